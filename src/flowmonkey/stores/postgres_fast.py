"""The hot path: one prepared statement in one round trip, below psycopg's cursor layer.

Every step commits exactly one statement. Sent through ``AsyncConnection.execute`` it
costs about 0.1 ms of client CPU on top of the server's work: a cursor, the
prepared-statement bookkeeping, and generator-driven waits that register and unregister
the socket with the event loop for every message. Here the statement goes out with
libpq's ``PQsendQueryPrepared`` through psycopg's public ``pq`` wrapper and the reply is
awaited with one reader callback, which measured about 0.05 ms less per statement. The
parameters are still adapted by psycopg (``PostgresQuery`` with the connection's
adapters), so every value is encoded exactly as on the ordinary path.

The statements are prepared under this module's own names, once per connection. If the
server has forgotten one (``DEALLOCATE ALL``), it is prepared again and the statement
retried: a statement that names an unknown prepared statement did not run.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection, errors, pq
from psycopg.adapt import Transformer

try:  # psycopg's query converter; not re-exported publicly (stable since 3.0)
    from psycopg._queries import PostgresQuery
except ImportError:  # pragma: no cover - a psycopg that moved it: use the ordinary path
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = ["AVAILABLE", "run_prepared"]

_Conn = AsyncConnection[Any]
_UNKNOWN_STATEMENT = b"26000"  # invalid_sql_statement_name


class _Prepared:
    """What one connection has prepared for this module (and its adapter context)."""

    __slots__ = ("names", "transformer")

    def __init__(self, conn: _Conn) -> None:
        self.names: dict[bytes, bytes] = {}
        self.transformer = Transformer(conn)


_STATE: weakref.WeakKeyDictionary[_Conn, _Prepared] = weakref.WeakKeyDictionary()


async def run_prepared(
    conn: _Conn, query: str, params: Mapping[str, Any] | Sequence[Any]
) -> list[tuple[bytes | None, ...]]:
    """Run one statement on an idle autocommit ``conn``; return its rows (text values).

    Raises the ``psycopg.Error`` the server reported (with its SQLSTATE and diagnostics),
    or ``psycopg.OperationalError`` when the connection breaks.
    """
    state = _STATE.get(conn)
    if state is None:
        state = _STATE[conn] = _Prepared(conn)
    converted = PostgresQuery(state.transformer)
    converted.convert(query, params)
    for attempt in (1, 2):
        name = state.names.get(converted.query)
        if name is None:
            name = b"fm_%d" % len(state.names)
            conn.pgconn.send_prepare(name, converted.query, converted.types)
            _raise_for(await _result(conn), conn)
            state.names[converted.query] = name
        conn.pgconn.send_query_prepared(name, converted.params, converted.formats)
        result = await _result(conn)
        if (
            attempt == 1
            and result.status == pq.ExecStatus.FATAL_ERROR
            and result.error_field(pq.DiagnosticField.SQLSTATE) == _UNKNOWN_STATEMENT
        ):
            state.names.clear()  # the server dropped our statements: prepare them again
            continue
        _raise_for(result, conn)
        return [
            tuple(result.get_value(row, col) for col in range(result.nfields))
            for row in range(result.ntuples)
        ]
    raise AssertionError("unreachable")  # pragma: no cover


def _raise_for(result: pq.abc.PGresult, conn: _Conn) -> None:
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise errors.error_from_result(result, encoding=conn.info.encoding)
    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        raise errors.InternalError(f"unexpected result status {result.status!r}")


async def _result(conn: _Conn) -> pq.abc.PGresult:
    """Flush the request, then collect its results; return the last one (the error,
    if any, comes last)."""
    pgconn = conn.pgconn
    loop = asyncio.get_running_loop()
    fd = pgconn.socket
    while pgconn.flush():  # a large request did not fit the socket buffer
        await _ready(loop, fd, write=True)
        pgconn.consume_input()
    last: pq.abc.PGresult | None = None
    while True:
        while pgconn.is_busy():
            await _ready(loop, fd, write=False)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        last = result
    if last is None:
        raise errors.InternalError("the server sent no result")
    return last


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool) -> None:
    future: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    loop.add_reader(fd, wake)
    try:
        await future
    finally:
        loop.remove_reader(fd)
        if write:
            loop.remove_writer(fd)

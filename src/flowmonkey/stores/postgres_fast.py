"""The hot path: one prepared statement in one round trip, below psycopg's cursor layer.

Every step commits exactly one statement. Sent through ``AsyncConnection.execute`` it
costs about 0.1 ms of client CPU on top of the server's work: a cursor, the
prepared-statement bookkeeping, and generator-driven waits that register and unregister
the socket with the event loop for every message. Here the statement goes out with
libpq's ``PQsendQueryPrepared`` through psycopg's public ``pq`` wrapper and the reply is
awaited with one reader callback.

Parameters are encoded here too, with one fixed rule per Python type, so a statement's
parameter types never depend on the values (psycopg sends an ``int`` as the smallest
integer type holding it: a statement prepared while an event sequence fitted in int2
would then reject a larger one). ``None``, ``str``, ``int`` and ``bool`` go as text
with an unspecified type, which the server infers from the statement (every such
placeholder sits in a typed context: a column, a cast, a function argument); lists of
only ``str`` or only ``bytes`` as text ``text[]``/``bytea[]`` literals; ``bytes``
go as binary ``bytea`` and aware ``datetime``s as binary ``timestamptz`` (psycopg's compiled
dumper, much cheaper than ISO text); anything else (the arrays of multi-row parts) is
dumped by psycopg's adapters, and the prepared statement is keyed on the query and the
types together.

The statements are prepared under this module's own names, once per connection. If the
server has forgotten one (``DEALLOCATE ALL``), it is prepared again and the statement
retried: a statement that names an unknown prepared statement did not run.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, abc, errors, pq
from psycopg.abc import Buffer
from psycopg.adapt import PyFormat, Transformer

__all__ = ["run_prepared"]

_Conn = AsyncConnection[Any]
_UNKNOWN_STATEMENT = b"26000"  # invalid_sql_statement_name
_TEXT, _BINARY = 0, 1
_BYTEA, _TEXT_ARRAY, _BYTEA_ARRAY = 17, 1009, 1001
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%")


class _Prepared:
    """What one connection has prepared for this module (and its adapter context)."""

    __slots__ = ("names", "timestamptz", "transformer")

    def __init__(self, conn: _Conn) -> None:
        self.names: dict[tuple[str, tuple[int, ...]], bytes] = {}
        self.transformer: abc.Transformer = Transformer(conn)
        # psycopg's own (compiled) binary dumper of an aware datetime, oid timestamptz
        self.timestamptz = self.transformer.get_dumper(datetime.now(UTC), PyFormat.BINARY)


_STATE: weakref.WeakKeyDictionary[_Conn, _Prepared] = weakref.WeakKeyDictionary()
# query text -> (the text with $n placeholders, parameter names in $n order or None
# for positional %s). Queries are the store's constants and the shapes assembled from
# them, a few dozen in all.
_SHAPES: dict[str, tuple[bytes, tuple[str, ...] | None]] = {}


def _shape(query: str) -> tuple[bytes, tuple[str, ...] | None]:
    names: dict[str, int] = {}
    positional = 0

    def number(match: re.Match[str]) -> str:
        nonlocal positional
        name = match.group(1)
        if name is not None:
            if name not in names:
                names[name] = len(names) + 1
            return f"${names[name]}"
        if match.group(0) == "%s":
            positional += 1
            return f"${positional}"
        raise ValueError(f"unsupported placeholder in {query!r}")

    text = _PLACEHOLDER.sub(number, query)
    if names and positional:
        raise ValueError(f"mixed placeholders in {query!r}")
    shape = (text.encode(), tuple(names) if names else None)
    _SHAPES[query] = shape
    return shape


def _encode(
    values: Sequence[Any], state: _Prepared
) -> tuple[list[Buffer | None], list[int], list[int]]:
    """Each value's wire form, type oid (0: inferred by the server) and format."""
    out: list[Buffer | None] = []
    types: list[int] = []
    formats: list[int] = []
    for value in values:
        kind = type(value)
        if value is None:
            out.append(None)
            types.append(0)
            formats.append(_TEXT)
        elif kind is str:
            out.append(value.encode())
            types.append(0)
            formats.append(_TEXT)
        elif kind is bytes:
            out.append(value)
            types.append(_BYTEA)
            formats.append(_BINARY)
        elif kind is bool:
            out.append(b"t" if value else b"f")
            types.append(0)
            formats.append(_TEXT)
        elif kind is int:
            out.append(b"%d" % value)
            types.append(0)
            formats.append(_TEXT)
        elif kind is datetime and value.tzinfo is not None:
            dumper = state.timestamptz
            out.append(dumper.dump(value))
            types.append(dumper.oid)
            formats.append(_BINARY)
        elif kind is list and value and _text_array(value, out):
            types.append(_TEXT_ARRAY if type(value[0]) is str else _BYTEA_ARRAY)
            formats.append(_TEXT)
        else:  # anything rarer: psycopg's adapters, with their own type
            transformer = state.transformer
            (dumped,) = transformer.dump_sequence([value], [PyFormat.AUTO])
            assert transformer.types is not None and transformer.formats is not None
            out.append(dumped)
            types.append(transformer.types[0])
            formats.append(transformer.formats[0])
    return out, types, formats


def _text_array(values: list[Any], out: list[Buffer | None]) -> bool:
    """Append the text form of a list of only ``str`` (``text[]``) or only ``bytes``
    (``bytea[]``, hex) to ``out`` and return True; else return False.

    Every element is quoted, so only ``"`` and ``\\`` need escaping inside it."""
    kind = type(values[0])
    if kind is str:
        if not all(type(v) is str for v in values):
            return False
        quoted = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
        out.append(('{"' + '","'.join(quoted) + '"}').encode())
        return True
    if kind is bytes and all(type(v) is bytes for v in values):
        out.append(b'{"\\\\x' + b'","\\\\x'.join(v.hex().encode() for v in values) + b'"}')
        return True
    return False


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
    text, order = _SHAPES.get(query) or _shape(query)
    if order is not None:
        assert isinstance(params, Mapping)
        values: Sequence[Any] = [params[name] for name in order]
    else:
        assert not isinstance(params, Mapping)
        values = params
    encoded, types, formats = _encode(values, state)
    key = (query, tuple(types))
    pgconn = conn.pgconn
    for attempt in (1, 2):
        name = state.names.get(key)
        if name is None:
            name = b"fm_%d" % len(state.names)
            pgconn.send_prepare(name, text, types)
            _raise_for(await _result(conn), conn)
            state.names[key] = name
        pgconn.send_query_prepared(name, encoded, formats)
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

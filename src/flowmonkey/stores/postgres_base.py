"""Lifecycle and transaction plumbing of ``PostgresStore`` (pool, migrations, errors).

``PostgresStore`` (``postgres.py``) adds the Store operations on top of this base, which
owns everything about *how* a transaction reaches the server:

- Pooled connections are autocommit; ``_tx`` writes ``BEGIN ISOLATION LEVEL READ
  COMMITTED`` and ``COMMIT`` itself inside psycopg pipeline mode, so statements queue
  locally and a whole transaction whose results are read after the block travels in one
  round trip (one WAL flush on commit).
- ``initialize`` opens one direct connection first to report an unreachable server at
  once (a pool would retry in the background and time out vaguely), checks or migrates
  the schema, then opens the pool.
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Self

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from flowmonkey import errors
from flowmonkey.stores import postgres_fast
from flowmonkey.stores import postgres_queries as q
from flowmonkey.stores.postgres_conn import (
    DEFAULT_SCHEMA,
    connect_kwargs,
    events_channel,
    parse_url,
    redact,
    translate_error,
    url_flag,
    validate_schema,
    wake_channel,
)
from flowmonkey.stores.postgres_schema import check_version, migrate_schema
from flowmonkey.stores.postgres_wake import PostgresWakeSignaler

__all__ = ["PostgresBase"]

_Conn = AsyncConnection[Any]

HOT_CONNECTION_MAX_S = 60.0
"""How long one connection may stay the store's hot connection before it goes back to
the pool (which then applies its lifetime and health rules to it)."""


class _Borrowing:
    """How the store borrows pooled connections: the pool, plus one *hot* connection.

    The connection given back last is kept aside and lent first, so a single stream of
    steps keeps using one warm server backend. (The pool hands out its idle connections
    in turn; after a burst has opened several, each step would otherwise land on a
    different backend, measured ~15 % slower per step.) Keeping it aside also skips the
    pool's bookkeeping on the hottest path. Nobody starves: while any borrower waits on
    the pool, a returned connection goes to the pool, which hands it over.
    """

    __slots__ = ("_hot", "_hot_id", "_hot_since", "_waiting", "pool")

    def __init__(self, pool: AsyncConnectionPool[_Conn]) -> None:
        self.pool = pool
        self._hot: _Conn | None = None
        self._hot_id = 0
        self._hot_since = 0.0
        self._waiting = 0

    async def get(self) -> _Conn:
        conn = self._hot
        if conn is not None:
            self._hot = None
            return conn
        self._waiting += 1
        try:
            return await self.pool.getconn()
        finally:
            self._waiting -= 1

    async def put(self, conn: _Conn) -> None:
        if (
            self._hot is None
            and not self._waiting
            and not conn.closed
            and not conn.broken
            and conn.pgconn.transaction_status == TransactionStatus.IDLE
        ):
            now = time.monotonic()
            if id(conn) != self._hot_id:
                self._hot_id, self._hot_since = id(conn), now
            if now - self._hot_since < HOT_CONNECTION_MAX_S:
                self._hot = conn
                return
            self._hot_id = 0  # served its turn: the pool checks its age and health
        await self.pool.putconn(conn)

    async def get_cold(self) -> _Conn:
        """A connection for background work (purge batches): never the hot one, so the
        live stream of steps keeps its warm backend. Give it back with ``put_cold``."""
        return await self.pool.getconn()

    async def put_cold(self, conn: _Conn) -> None:
        await self.pool.putconn(conn)

    async def close(self) -> None:
        conn, self._hot = self._hot, None
        if conn is not None:
            await self.pool.putconn(conn)
        await self.pool.close()


class PostgresBase:
    """Connection lifecycle shared by ``PostgresStore``: pool, schema, transactions.

    Args:
        dsn: libpq connection string or ``postgresql://`` URL.
        schema: schema holding every table (created on first ``initialize``).
        min_size, max_size: connection pool bounds.
        auto_migrate: migrate an older schema on ``initialize`` (else refuse).
        connect_timeout: seconds before an unreachable server is reported.
        notify: send ``pg_notify`` when an execution becomes runnable for others.
        channel: NOTIFY channel (default ``flowmonkey_wake_<schema>``).
        notify_events: also ``pg_notify`` (channel ``flowmonkey_events_<schema>``, payload
            the execution id) in every commit that writes events, so live event streams
            (the API's SSE) hear about them at once. Off by default: a NOTIFY serialises
            committing transactions server-wide. URL: ``?notify_events=true``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        min_size: int = 1,
        max_size: int = 10,
        auto_migrate: bool = True,
        connect_timeout: float = 5.0,
        pool_timeout: float = 30.0,
        notify: bool = True,
        channel: str | None = None,
        application_name: str = "flowmonkey",
        notify_events: bool = False,
    ) -> None:
        self.dsn = dsn
        self.schema = validate_schema(schema)
        self.channel = channel or wake_channel(self.schema)
        self._min_size = min_size
        self._max_size = max(max_size, min_size)
        self._auto_migrate = auto_migrate
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._notify = notify
        self.notify_events = notify_events
        self.events_channel = events_channel(self.schema)
        self._kwargs = connect_kwargs(
            self.schema, connect_timeout=connect_timeout, application_name=application_name
        )
        self._pool: _Borrowing | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build from ``postgresql://user:pw@host:port/db?schema=name`` (or ``postgres://``)."""
        dsn, schema = parse_url(url)
        options.setdefault("schema", schema)
        options.setdefault("notify_events", url_flag(url, "notify_events"))
        return cls(dsn, **options)

    @property
    def url(self) -> str:
        """The connection string with the password hidden."""
        return redact(self.dsn)

    @property
    def _where(self) -> str:
        return f'{self.url} (schema "{self.schema}")'

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, schema={self.schema!r})"

    # -- lifecycle ------------------------------------------------------------------------

    async def _connect(self) -> _Conn:
        try:
            return await AsyncConnection.connect(self.dsn, **self._kwargs)
        except psycopg.Error as exc:
            raise errors.StoreUnavailable(
                f"cannot connect to PostgreSQL at {self.url}: {str(exc).strip()}"
            ) from exc

    async def initialize(self) -> None:
        """Connect, check/migrate the schema, open the pool. Idempotent.

        Raises:
            StoreUnavailable: the server cannot be reached (within ``connect_timeout``).
            SchemaVersionError: the schema is newer, or older with ``auto_migrate`` off.
        """
        if self._pool is not None:
            return
        # One direct connection first: it reports an unreachable server at once with the
        # driver's reason (a pool would retry in the background and time out vaguely).
        conn = await self._connect()
        try:
            await check_version(
                conn, self.schema, database=self._where, url=self.url,
                auto_migrate=self._auto_migrate,
            )  # fmt: skip
        except psycopg.Error as exc:
            raise translate_error(exc, self.dsn) from exc
        finally:
            await conn.close()
        pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
            self.dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            kwargs=self._kwargs,
            open=False,
            timeout=self._pool_timeout,
            name=f"flowmonkey-{self.schema}",
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout + 5)
        except PoolTimeout as exc:
            await pool.close()
            raise translate_error(exc, self.dsn) from exc
        self._pool = _Borrowing(pool)

    async def migrate(self) -> int:
        """Apply pending migrations (for ``flowmonkey migrate``); return the version reached.

        Works without ``initialize``. Raises ``SchemaVersionError`` when the schema is
        newer than this code.
        """
        conn = await self._connect()
        try:
            return await migrate_schema(conn, self.schema, database=self._where)
        except psycopg.Error as exc:
            raise translate_error(exc, self.dsn) from exc
        finally:
            await conn.close()

    async def close(self) -> None:
        """Close the pool. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def wake_signaler(self) -> PostgresWakeSignaler:
        """A ``PostgresWakeSignaler`` listening on this store's NOTIFY channel."""
        return PostgresWakeSignaler(self.dsn, channel=self.channel)

    def event_listener(self) -> PostgresWakeSignaler | None:
        """With ``notify_events``: a listener whose ``wait`` returns the ids of executions
        that committed events (from any process); else ``None``."""
        if not self.notify_events:
            return None
        return PostgresWakeSignaler(self.dsn, channel=self.events_channel)

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- plumbing ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _tx(self, *, cold: bool = False) -> AsyncIterator[_Conn]:
        """One pipelined transaction: statements queue until a result is needed or the
        block ends, and ``BEGIN`` and ``COMMIT`` ride along with them. ``cold``: see
        ``_read``."""
        async with self._read(cold=cold) as conn:
            try:
                failure: psycopg.Error | None = None
                async with conn.pipeline() as pipeline:
                    try:
                        await conn.execute(q.BEGIN)
                        yield conn
                        await conn.execute(q.COMMIT)
                    except psycopg.Error as exc:
                        # An error surfaced mid-batch: drain the aborted pipeline
                        # here so leaving it is clean (psycopg would log it).
                        failure = exc
                        with contextlib.suppress(psycopg.Error):
                            await pipeline.sync()
                if failure is not None:
                    raise failure
            except BaseException:
                await _rollback_quietly(conn)
                raise

    @asynccontextmanager
    async def _read(self, *, cold: bool = False) -> AsyncIterator[_Conn]:
        """A connection for single statements (autocommit: atomic, no BEGIN). ``cold``:
        for background work, never the hot connection (``_Borrowing``): a purge batch
        that took it moved the live steps to other backends, measured +59 % on their
        p50 (a connection of its own: +4 %)."""
        borrowing = self._pool
        if borrowing is None:
            raise errors.StoreError("PostgresStore is not initialized (call initialize())")
        try:
            conn = await (borrowing.get_cold() if cold else borrowing.get())
            try:
                yield conn
            finally:
                await (borrowing.put_cold(conn) if cold else borrowing.put(conn))
        except (psycopg.Error, PoolTimeout) as exc:
            raise translate_error(exc, self.dsn) from exc

    async def _run_one(self, query: str, params: Any) -> builtins.list[tuple[bytes | None, ...]]:
        """One write statement on the hot path (``postgres_fast``); rows as text values.

        ``_read`` written out: its context manager is a measurable part of a step."""
        borrowing = self._pool
        if borrowing is None:
            raise errors.StoreError("PostgresStore is not initialized (call initialize())")
        try:
            conn = await borrowing.get()
            try:
                return await postgres_fast.run_prepared(conn, query, params)
            finally:
                await borrowing.put(conn)
        except (psycopg.Error, PoolTimeout) as exc:
            raise translate_error(exc, self.dsn) from exc

    async def _fetchall(self, query: str, params: Any = None) -> builtins.list[Any]:
        async with self._read() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

    # -- executions -------------------------------------------------------------------------

    @property
    def _notify_channel(self) -> str | None:
        return self.channel if self._notify else None

    @property
    def _events_channel(self) -> str | None:
        return self.events_channel if self.notify_events else None


async def _rollback_quietly(conn: _Conn) -> None:
    # Leave the connection idle for the pool. ``conn.rollback()`` (not a plain ROLLBACK
    # statement) also resets psycopg's prepared-statement cache right away; after an
    # aborted pipeline that cache can otherwise name statements the server never parsed.
    # If the connection itself is broken the pool discards it; the original error is
    # what the caller needs to see.
    if conn.closed:
        return
    try:
        await conn.rollback()
    except psycopg.Error:
        pass

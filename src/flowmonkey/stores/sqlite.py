"""``SqliteStore``: the embedded durable store (stdlib ``sqlite3``, one file, WAL).

All database work runs on ONE dedicated thread that owns the connection, so writes from
this process serialise without locks and the event loop never blocks on disk. Several
processes may open the same file (workers on one machine): nothing about an execution is
cached in this object, and every method is one transaction, so leases and claims stay
correct across processes.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar, TypeVarTuple
from urllib.parse import parse_qs

import orjson

from flowmonkey import errors
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.stores import migrate, sqlite_purge, tables
from flowmonkey.stores import sqlite_ops as ops
from flowmonkey.stores import sqlite_queries as q
from flowmonkey.stores.base import (
    Acquired,
    ExecutionQuery,
    Lease,
    Page,
    PurgeBatch,
    PurgeQuery,
    StepCommit,
    StoredFlow,
    TaskQuery,
)
from flowmonkey.stores.documents import SqliteDocuments
from flowmonkey.stores.keys import SqliteKeys
from flowmonkey.stores.schedules_sql import SqliteSchedules
from flowmonkey.stores.sqlite_batch import SqliteCreateMany
from flowmonkey.stores.sqlite_checkpoint import WAL_RESTART_PAGES, Checkpointer
from flowmonkey.stores.sqlite_lock import WriterLock
from flowmonkey.stores.tables import SqliteTables
from flowmonkey.versions import sort_versions

__all__ = ["SqliteStore"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_SECURE_DELETE = ("OFF", "FAST", "ON")
_OPT = orjson.OPT_NON_STR_KEYS
_BEGIN_WRITE = "BEGIN IMMEDIATE"
_BEGIN_READ = "BEGIN"


class _DbThread:
    """The one thread that owns the connection: runs jobs in order, resolves futures.

    A bare thread and queue instead of a ``ThreadPoolExecutor``: the hand-off costs
    about half as much, and it is paid on every step commit.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        # Daemon: an interpreter exiting without close() must not hang on this thread;
        # SQLite rolls back an interrupted transaction when the file is next opened.
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> asyncio.Future[T]:
        """Queue ``fn(*args)``; the returned future resolves on the caller's loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        return future

    def stop(self) -> None:
        """Let the thread finish the queued jobs and exit."""
        self._jobs.put(None)

    def _main(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, fn, args = job
            try:
                result = fn(*args)
            except BaseException as exc:
                _resolve(loop, future.set_exception, future, exc)
            else:
                _resolve(loop, future.set_result, future, result)


def _resolve(
    loop: asyncio.AbstractEventLoop,
    setter: Callable[[Any], None],
    future: asyncio.Future[Any],
    value: Any,
) -> None:
    try:
        loop.call_soon_threadsafe(_set_unless_cancelled, setter, future, value)
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more


def _set_unless_cancelled(
    setter: Callable[[Any], None], future: asyncio.Future[Any], value: Any
) -> None:
    # The caller may have been cancelled while the job ran; the job's work stands.
    if not future.done():
        setter(value)


_TERMINAL = frozenset({"completed", "failed", "cancelled"})


class _Inline:
    """Runs jobs right away on the caller's (event loop) thread: see ``threaded``."""

    def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> asyncio.Future[T]:
        """Run ``fn(*args)`` now; the returned future is already resolved."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def stop(self) -> None:
        """Nothing to stop."""


class SqliteStore(SqliteKeys, SqliteSchedules, SqliteDocuments, SqliteTables, SqliteCreateMany):
    """The ``Store`` protocol on a SQLite file.

    Args:
        path: Database file (created with its schema on ``initialize``).
        synchronous: SQLite ``PRAGMA synchronous``. ``FULL`` (default) makes every
            commit survive power loss; ``NORMAL`` in WAL mode survives a process crash
            but may lose the last commits on power loss, for more throughput.
        busy_timeout_ms: How long to wait for another process's write lock.
        threaded: Run SQLite on a dedicated thread instead of the event loop's. Off by
            default: a SQLite write is mostly an fsync with the GIL released, and the
            hand-off to a thread and back (two wake-ups) costs about a quarter of a
            single-stream step. Turn it on when CPU-heavy async handlers should keep
            running while a commit waits for the disk.
        secure_delete: SQLite ``PRAGMA secure_delete``. ``FAST`` (default) zeroes
            deleted rows in the pages a commit writes anyway; ``ON`` also overwrites
            every freed page (large event payloads spill into such pages), which doubles
            the data a purge writes; ``OFF`` zeroes nothing. Builds differ in their
            default (Debian's is ``ON``, SQLite's own ``OFF``), so the store sets it.
            ``VACUUM`` removes what deleted rows left behind, whatever the setting.
        checkpoint: ``"background"`` (default): WAL checkpoints run on a thread of their
            own (``stores/sqlite_checkpoint.py``), so a commit that crosses SQLite's
            checkpoint threshold finds the pages already copied instead of copying a
            thousand of them itself, and the threshold is raised to 10,000 pages (the
            WAL file grows to about 40 MB before it starts over); ``"inline"``:
            SQLite's own automatic checkpoints only, every 1,000 pages.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 30000,
        threaded: bool = False,
        secure_delete: str = "FAST",
        checkpoint: str = "background",
    ) -> None:
        mode = synchronous.upper()
        if mode not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        scrub = secure_delete.upper()
        if scrub not in _SECURE_DELETE:
            raise ValueError(f"secure_delete must be one of {', '.join(_SECURE_DELETE)}")
        self.secure_delete = scrub
        if checkpoint not in ("background", "inline"):
            raise ValueError("checkpoint must be 'background' or 'inline'")
        self.checkpoint = checkpoint
        self._checkpointer: Checkpointer | None = None
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must be >= 0")
        self.path = os.fspath(path)
        self.synchronous = mode
        self.busy_timeout_ms = int(busy_timeout_ms)
        self.threaded = bool(threaded)
        self._thread: _DbThread | _Inline | None = None
        self._conn: sqlite3.Connection | None = None  # used on self._thread only
        self._writer: WriterLock | None = None  # writers of all processes queue on it
        # Indexed columns (and lease) last written per execution by a committed step of
        # this process: the next commit under the same lease can skip them.
        self._written: dict[str, tuple[Any, ...]] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SqliteStore:
        """Build a store from ``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``.

        Query parameters ``synchronous``, ``busy_timeout_ms``, ``threaded``,
        ``secure_delete`` and ``checkpoint`` set those options;
        keyword ``options`` (the constructor's) override them.
        """
        prefix = "sqlite:///"
        if not url.startswith(prefix):
            raise ValueError(
                f"not a SQLite URL: {url!r} (use sqlite:///relative.db or sqlite:////abs.db)"
            )
        path, _, query = url[len(prefix) :].partition("?")
        if not path:
            raise ValueError(f"SQLite URL has no file path: {url!r}")
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query).items()}
        known = {"synchronous", "busy_timeout_ms", "threaded", "secure_delete", "checkpoint"}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"unknown SQLite URL parameter(s): {', '.join(sorted(unknown))}")
        if "busy_timeout_ms" in params:
            params["busy_timeout_ms"] = int(params["busy_timeout_ms"])
        if "threaded" in params:
            params["threaded"] = str(params["threaded"]).lower() in ("1", "true", "yes", "on")
        params.update(options)
        return cls(path, **params)

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r}, synchronous={self.synchronous!r})"

    # -- plumbing -------------------------------------------------------------------------

    async def _tx(
        self,
        write: bool | None,
        op: Callable[[sqlite3.Connection, *Ts], T],
        *args: *Ts,
        durable: bool = True,
    ) -> T:
        """Run ``op(conn, *args)`` as one transaction on the store thread (``write=None``:
        outside any transaction; ``op`` begins and ends its own). ``durable=False``: a
        write committed without waiting for the disk (``_in_lax_tx``)."""
        thread = self._thread
        if thread is None:
            raise errors.StoreError(f"{self!r} is not open; await store.initialize() first")
        run = self._in_tx if durable else self._in_lax_tx
        if not self.threaded:
            return run(write, op, args)
        return await thread.run(run, write, op, args)

    def _in_lax_tx(
        self, write: bool | None, op: Callable[[sqlite3.Connection, *Ts], T], args: tuple[*Ts]
    ) -> T:
        """``_in_tx`` for a write that need not survive power loss, committed without
        waiting for the disk (``synchronous = NORMAL`` for that commit only). In WAL
        mode the database stays consistent; the write may be undone by a power loss, and
        the next durable commit's fsync covers it anyway. For the purge: an undone
        batch is redone by the next pass."""
        conn = self._conn
        lax = conn is not None and self.synchronous in ("FULL", "EXTRA")
        if lax:
            conn.execute("PRAGMA synchronous = NORMAL")  # type: ignore[union-attr]
        try:
            return self._in_tx(write, op, args)
        finally:
            if lax:
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")  # type: ignore[union-attr]

    def _in_tx(
        self, write: bool | None, op: Callable[[sqlite3.Connection, *Ts], T], args: tuple[*Ts]
    ) -> T:
        """Transaction wrapper (store thread); driver errors become ``StoreError``.

        Writers use BEGIN IMMEDIATE: it takes the write lock up front, so two processes
        never both hold read locks and then deadlock upgrading them (SQLite fails one of
        them with SQLITE_BUSY at once, without waiting for the busy timeout). Readers use
        a deferred BEGIN: one consistent WAL snapshot across their SELECTs.
        """
        conn = self._conn
        if conn is None:
            raise errors.StoreError(f"{self!r} is closed")
        writer = self._writer if write else None
        locked = writer is not None and writer.acquire(self.busy_timeout_ms / 1000)
        try:
            if write is None:
                return op(conn, *args)
            conn.execute(_BEGIN_WRITE if write else _BEGIN_READ)
            result = op(conn, *args)
            conn.execute("COMMIT")
            return result
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the original error is the one worth reporting
            if isinstance(exc, sqlite3.Error):
                raise errors.StoreError(f"SQLite error on {self.path}: {exc}") from exc
            raise
        finally:
            if locked:
                writer.release()  # type: ignore[union-attr]

    async def initialize(self) -> None:
        """Open the file (WAL, pragmas) and migrate the schema. Idempotent."""
        if self._thread is not None:
            return
        thread: _DbThread | _Inline = (
            _DbThread(f"flowmonkey-sqlite:{self.path}") if self.threaded else _Inline()
        )
        self._thread = thread
        try:
            await thread.run(self._open)
        except BaseException:
            self._thread = None
            thread.run(self._close)  # in case the open finished after a cancellation
            thread.stop()
            raise

    def _open(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,  # autocommit mode: we issue BEGIN/COMMIT ourselves
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise errors.StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            # Foreign keys are not enforced (the schema's REFERENCES stay declarative),
            # as PostgreSQL's migration 0006 dropped them: every write of an execution's
            # rows runs in the transaction that reads or fences the execution row, and
            # SQLite has one writer at a time, so no orphan can appear; purge deletes the
            # children itself. Enforcing them cost a lookup of the execution per row
            # inserted and of every child table per execution purged (about half of a
            # purge's delete time).
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute(f"PRAGMA secure_delete = {self.secure_delete}")
            if self.checkpoint == "background":  # the thread copies; see WAL_RESTART_PAGES
                conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_RESTART_PAGES}")
        except sqlite3.Error as exc:
            conn.close()
            raise errors.StoreError(f"cannot configure SQLite {self.path}: {exc}") from exc
        self._conn = conn
        self._writer = WriterLock(self.path)
        try:
            # One IMMEDIATE transaction around the whole migration: processes starting
            # together queue on the write lock, and the later ones find nothing to do.
            self._in_tx(True, self._migrate, ())
        except BaseException:
            self._conn = None
            conn.close()
            self._close_writer()
            raise
        if self.checkpoint == "background":
            self._checkpointer = Checkpointer(self.path)
            self._checkpointer.start()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        target = ops.MigrationTarget(conn)
        migrations = migrate.load_migrations("sqlite")
        database = f"SQLite database {self.path}"
        before = target.current_version()
        # Found by name: migrations are renumbered when branches merge.
        rows_per_table = next(m.version for m in migrations if m.name == "table_index")
        if before < rows_per_table:
            migrate.migrate(target, migrations[: rows_per_table - 1], database=database)
            # Migration 6 drops the shared table_rows; its rows first move to a SQLite
            # table per data table, whose names SQL alone cannot produce.
            tables.sqlite_move_shared_rows(conn)
        migrate.migrate(target, migrations, database=database)

    async def close(self) -> None:
        """Close the connection and stop the thread. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            await thread.run(self._close)
        finally:
            thread.stop()

    def _close(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._close_writer()

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    # -- executions -----------------------------------------------------------------------

    async def create(
        self, execution: Execution, events: Sequence[Event] = (), *, lease: Lease | None = None
    ) -> tuple[Execution, bool]:
        """Insert, honouring the (tenant, flow, key) idempotency window (see ``Store``)."""
        state = q.state_params(execution)
        return await self._tx(True, ops.create, execution, events, state, lease)

    async def get(self, execution_id: str, *, history: bool = True) -> Execution | None:
        """Return the execution (context included; history when asked) or ``None``."""
        return await self._tx(False, ops.get, execution_id, history)

    async def find_children(self, parent_execution_id: str) -> list[Execution]:
        """Direct children, oldest first (no history)."""
        return await self._tx(False, ops.find_children, parent_execution_id)

    # -- leases and step commits ----------------------------------------------------------

    async def acquire(
        self,
        execution_id: str,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        steal: bool = False,
        start: bool = True,
        failed: bool = False,
    ) -> Acquired:
        """Lease one execution (see ``Store.acquire``)."""
        return await self._tx(
            True, ops.acquire, execution_id, owner, now, lease_for, steal, start, failed
        )

    async def commit(self, lease: Lease, commit: StepCommit) -> None:
        """Apply one step's changes atomically, fenced by ``lease`` (see ``Store.commit``)."""
        if commit.execution.id != lease.execution_id:
            raise ValueError(
                f"commit of execution {commit.execution.id!r} under a lease on "
                f"{lease.execution_id!r}"
            )
        # Serialised here, on the event loop, so the store thread holds the write lock
        # only for the SQL itself.
        state = q.state_params(commit.execution)
        eid = lease.execution_id
        indexed = (lease.token, lease.owner, state[0], state[2], state[3], state[4])
        # Trust the cache only for what a committed transaction wrote: drop the entry
        # first, put it back once the commit succeeded.
        narrow = self._written.pop(eid, None) == indexed
        await self._tx(True, ops.commit, lease, commit, state, narrow)
        if not (commit.release or state[0] in _TERMINAL):
            if len(self._written) > 10_000:
                self._written.clear()  # bounded: leases that ended without a release
            self._written[eid] = indexed

    async def heartbeat(self, lease: Lease, *, now: datetime, lease_for: timedelta) -> Lease:
        """Extend a lease; ``LeaseLost`` if it was taken over or released."""
        expires = now + lease_for
        await self._tx(True, ops.fenced, q.HEARTBEAT, q.to_us(expires), lease)
        return replace(lease, expires_at=expires)

    async def release(self, lease: Lease) -> None:
        """Drop a lease if still held (no error when already lost)."""
        await self._tx(True, ops.release, lease)

    async def save_checkpoint(self, lease: Lease, checkpoint: dict[str, Any] | None) -> None:
        """Persist checkpoint data for the running step (fenced)."""
        blob = None if checkpoint is None else orjson.dumps(checkpoint, option=_OPT)
        await self._tx(True, ops.fenced, q.SAVE_CHECKPOINT, blob, lease)

    async def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        limit: int,
        flows: Collection[tuple[str, str]] | None = None,
    ) -> list[Acquired]:
        """Lease up to ``limit`` runnable executions, oldest first (see ``Store.claim``)."""
        if limit <= 0 or (flows is not None and not flows):
            return []
        keys = None if flows is None else orjson.dumps([list(k) for k in flows]).decode()
        return await self._tx(True, ops.claim, owner, now, lease_for, limit, keys)

    async def count_by_status(
        self, *, tenant_id: str | None = None, flow_id: str | None = None
    ) -> dict[str, int]:
        """Executions per status, by tenant and flow (one indexed GROUP BY)."""
        sql, params = q.count_by_status(tenant_id, flow_id)
        found = await self._tx(False, ops.rows, sql, params)
        return dict(found)

    async def runnable_by_flow(self, *, now: datetime) -> dict[tuple[str, str], int]:
        """Runnable executions per ``(flow_id, flow_version)``."""
        found = await self._tx(False, ops.rows, q.RUNNABLE_BY_FLOW, {"now": q.to_us(now)})
        return {(flow_id, version): count for flow_id, version, count in found}

    async def due(self, *, now: datetime, limit: int) -> list[str]:
        """Unleased executions with a due wake, deadline or wait deadline."""
        params = {"now": q.to_us(now), "limit": limit}
        return [row[0] for row in await self._tx(False, ops.rows, q.SELECT_DUE, params)]

    async def stale(self, *, now: datetime, updated_before: datetime, limit: int) -> list[str]:
        """Running executions whose lease expired (or, unleased, not updated lately)."""
        params = {"now": q.to_us(now), "before": q.to_us(updated_before), "limit": limit}
        return [row[0] for row in await self._tx(False, ops.rows, q.SELECT_STALE, params)]

    # -- events, resume tokens, tasks -----------------------------------------------------

    async def append_event(
        self, execution_id: str, type: str, data: dict[str, Any], *, at: datetime, now: datetime
    ) -> Event | None:
        """Append one event unless a live lease is held (see ``Store.append_event``)."""
        event = Event(type, execution_id, at, data, 0)
        return await self._tx(True, ops.append_event, event, q.to_us(now))

    async def events(self, execution_id: str, *, after: int = 0) -> list[Event]:
        """Persisted events of one execution with ``sequence > after``, in order."""
        # max(): history rows share the table with negative sequences.
        after = max(after, 0)
        found = await self._tx(False, ops.rows, q.SELECT_EVENTS, (execution_id, after))
        return [event for row in found for event in q.events_from_row(execution_id, row, after)]

    async def get_resume_token(self, token_hash: str) -> ResumeTokenRecord | None:
        """Look a resume token up by its SHA-256 hex digest."""
        found = await self._tx(False, ops.rows, q.SELECT_RESUME_TOKEN, (token_hash,))
        return q.resume_token_from_row(found[0]) if found else None

    async def get_task(self, task_id: str) -> Task | None:
        """Return one user task."""
        found = await self._tx(False, ops.rows, q.SELECT_TASK, (task_id,))
        return q.task_from_row(found[0]) if found else None

    async def list_tasks(self, query: TaskQuery) -> list[Task]:
        """User tasks matching the query, oldest (or newest) first."""
        where: list[str] = []
        args: list[Any] = []
        for column in ("status", "assignee", "role", "tenant_id", "execution_id"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.after is not None:
            where.append(f"(created_at, id) {'<' if query.newest_first else '>'} (?, ?)")
            args.extend((q.to_us(query.after[0]), query.after[1]))
        order = " DESC" if query.newest_first else ""
        sql = q.SELECT_TASKS
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY created_at{order}, id{order} LIMIT ?"
        args.append(query.limit)
        return [q.task_from_row(row) for row in await self._tx(False, ops.rows, sql, args)]

    # -- retention ------------------------------------------------------------------------

    async def purge(self, query: PurgeQuery) -> PurgeBatch:
        """Delete one batch of old finished executions (see ``Store.purge``), committed
        without an fsync (``_in_lax_tx``)."""
        return await self._tx(True, sqlite_purge.purge, query, durable=False)

    # -- flow definitions -----------------------------------------------------------------

    async def save_flow(self, definition: dict[str, Any], *, now: datetime) -> bool:
        """Store one immutable flow version (see ``Store.save_flow``)."""
        return await self._tx(True, ops.save_flow, definition, now)

    async def get_flow(self, flow_id: str, version: str | None = None) -> StoredFlow | None:
        """One stored version, or the latest by semver when ``version`` is None."""
        return await self._tx(False, ops.get_flow, flow_id, version)

    async def list_flows(self) -> list[StoredFlow]:
        """The latest version of every stored flow, by flow id."""
        return await self._tx(False, ops.list_flows)

    async def flow_versions(self, flow_id: str) -> list[str]:
        """Stored versions of one flow, newest (semver) first."""
        found = await self._tx(False, ops.rows, q.SELECT_FLOW_VERSIONS, (flow_id,))
        return sort_versions(version for (version,) in found)

    # Last in the class body: the name ``list`` would shadow the builtin in annotations.
    async def list(self, query: ExecutionQuery) -> Page[Execution]:
        """Filter, newest first, cursor-paginated (no history)."""
        return await self._tx(False, ops.list_executions, query)

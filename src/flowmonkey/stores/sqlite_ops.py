"""The transaction bodies of ``SqliteStore``: plain functions of an open connection.

Each function runs on the store thread inside the one transaction ``SqliteStore`` opened
for it (``BEGIN IMMEDIATE`` for writers) and raises domain errors to roll it back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from flowmonkey import errors
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus, StepRecord
from flowmonkey.stores import migrate, tables
from flowmonkey.stores import sqlite_queries as q
from flowmonkey.stores.base import (
    Acquired,
    ExecutionQuery,
    Lease,
    Page,
    StepCommit,
    StoredFlow,
)
from flowmonkey.stores.cursors import decode_cursor, encode_cursor
from flowmonkey.versions import semver_key

__all__ = [
    "CommitRow",
    "MigrationTarget",
    "TERMINAL",
    "acquire",
    "append_event",
    "claim",
    "commit",
    "create",
    "fenced",
    "find_children",
    "get",
    "get_flow",
    "ALL_STATUSES",
    "list_executions",
    "list_sql",
    "list_flows",
    "release",
    "rows",
    "save_flow",
]

_OPT = orjson.OPT_NON_STR_KEYS
_dumps = orjson.dumps
_loads = orjson.loads
_PENDING = str(ExecutionStatus.PENDING)
_RUNNING = str(ExecutionStatus.RUNNING)
TERMINAL = frozenset(str(s) for s in ExecutionStatus if s.is_terminal)
"""Terminal statuses as stored (text)."""

CommitRow = tuple[str, int, int | None, int | None, int | None, bytes, bytes | None]
"""``sqlite_queries.state_params`` of the committed execution."""


# -- loading ------------------------------------------------------------------------------


def _context(conn: sqlite3.Connection, execution_id: str) -> dict[str, Any]:
    return {k: _loads(v) for k, v in conn.execute(q.SELECT_CONTEXT, (execution_id,))}


def _history(conn: sqlite3.Connection, execution_id: str) -> list[StepRecord]:
    return [q.step_from_blob(data) for (data,) in conn.execute(q.SELECT_HISTORY, (execution_id,))]


def _build(
    conn: sqlite3.Connection,
    row: Sequence[Any],
    *,
    history: bool,
    state: dict[str, Any] | None = None,
    status: str | None = None,
) -> Execution:
    """Execution from a row starting with ``q.EXEC_COLUMNS``, plus its context."""
    ident = row[0]
    return q.execution_from_row(
        row,
        _context(conn, ident),
        _history(conn, ident) if history else [],
        state=state,
        status=status,
    )


def _load(conn: sqlite3.Connection, execution_id: str, *, history: bool) -> Execution:
    row = conn.execute(q.SELECT_EXECUTION, (execution_id,)).fetchone()
    if row is None:
        raise errors.ExecutionNotFound(execution_id)
    return _build(conn, row, history=history)


def rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
    """All rows of one query (the generic read)."""
    return conn.execute(sql, params).fetchall()


# -- executions ---------------------------------------------------------------------------


def create(
    conn: sqlite3.Connection,
    execution: Execution,
    events: Sequence[Event],
    state: CommitRow,
    lease: Lease | None = None,
) -> tuple[Execution, bool]:
    """Insert one execution unless its idempotency key is taken and unexpired."""
    ex = execution
    if ex.idempotency_key is not None:
        ikey = (ex.tenant_id or "", ex.flow_id, ex.idempotency_key)
        hit = conn.execute(q.SELECT_IDEMPOTENCY, ikey).fetchone()
        # Same rule as MemoryStore: a key without an expiry does not deduplicate.
        if hit is not None and hit[1] is not None and hit[1] > q.to_us(ex.created_at):
            return _load(conn, hit[0], history=True), False
        conn.execute(q.UPSERT_IDEMPOTENCY, (*ikey, ex.id, q.opt_us(ex.idempotency_expires_at)))
    status, updated, wake, deadline, wait_deadline, state_blob, checkpoint = state
    try:
        conn.execute(
            q.INSERT_EXECUTION,
            (ex.id, ex.flow_id, ex.flow_version, status, ex.tenant_id, ex.correlation_id,
             ex.parent_execution_id, q.to_us(ex.created_at), updated, wake, deadline,
             wait_deadline, q.info_blob(ex.header_dict()), state_blob, checkpoint),
        )  # fmt: skip
    except sqlite3.IntegrityError as exc:
        raise errors.StoreError(f'execution id "{ex.id}" already exists') from exc
    if ex.context:
        conn.executemany(
            q.UPSERT_CONTEXT, [(ex.id, k, _dumps(v, option=_OPT)) for k, v in ex.context.items()]
        )
    if events:
        conn.execute(q.INSERT_EVENT, q.event_params(ex.id, events))
    if lease is not None:
        conn.execute(q.GRANT, (lease.owner, lease.token, q.to_us(lease.expires_at), ex.id))
    return execution, True


def get(conn: sqlite3.Connection, execution_id: str, history: bool) -> Execution | None:
    """One execution or ``None``."""
    row = conn.execute(q.SELECT_EXECUTION, (execution_id,)).fetchone()
    return None if row is None else _build(conn, row, history=history)


# Listing index per equality filter, most selective first: each is (filter, status,
# created_at, id), so one status of one filter value is one backwards index range.
_LIST_INDEXES = (
    ("parent_execution_id", "executions_parent"),
    ("correlation_id", "executions_correlation"),
    ("flow_id", "executions_flow"),
    ("tenant_id", "executions_tenant"),
)
ALL_STATUSES = tuple(str(s) for s in ExecutionStatus)


def list_sql(query: ExecutionQuery) -> tuple[str, list[Any]]:
    """The per-status page query of ``query``: its SQL (``?`` for the status first) and
    the arguments that follow the status. Public so a test can check its query plan."""
    index = "executions_status"
    where = ["status = ?"]
    args: list[Any] = []
    for column, name in _LIST_INDEXES:
        value = getattr(query, column)
        if value is not None:
            if index == "executions_status":
                index = name
            where.append(f"{column} = ?")
            args.append(value)
    if index == "executions_flow" and query.tenant_id is not None:
        index = "executions_tenant_flow"
    if query.created_after is not None:
        where.append("created_at >= ?")
        args.append(q.to_us(query.created_after))
    if query.created_before is not None:
        where.append("created_at < ?")
        args.append(q.to_us(query.created_before))
    if query.cursor:
        at, ident = decode_cursor(query.cursor)
        # A row value: SQLite turns it into an index range (an OR would not be).
        where.append("(created_at, id) < (?, ?)")
        args.extend((q.to_us(at), ident))
    sql = (
        f"SELECT created_at, id FROM executions INDEXED BY {index} "
        f"WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?"
    )
    args.append(query.limit + 1)
    return sql, args


def list_executions(conn: sqlite3.Connection, query: ExecutionQuery) -> Page[Execution]:
    """One page, newest first: ``limit + 1`` keys from each status's index range, merged,
    so a page costs O(page x statuses) whatever the number of stored executions."""
    statuses = [str(s) for s in query.status] if query.status else ALL_STATUSES
    sql, args = list_sql(query)
    keys: list[tuple[int, str]] = []
    for status in dict.fromkeys(statuses):
        keys.extend(conn.execute(sql, (status, *args)).fetchall())
    keys.sort(reverse=True)
    items = [_load(conn, ident, history=False) for _, ident in keys[: query.limit]]
    next_cursor = None
    if len(keys) > query.limit and items:
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id)
    return Page(items=items, next_cursor=next_cursor)


def find_children(conn: sqlite3.Connection, parent_execution_id: str) -> list[Execution]:
    """Direct children, oldest first, without history."""
    found = conn.execute(q.SELECT_CHILDREN, (parent_execution_id,)).fetchall()
    return [_build(conn, row, history=False) for row in found]


# -- leases and commits -------------------------------------------------------------------


def _grant(
    conn: sqlite3.Connection,
    row: Sequence[Any],
    owner: str,
    now: datetime,
    lease_for: timedelta,
    start: bool = True,
) -> Acquired:
    """Lease the execution in ``row`` (``q.EXEC_COLUMNS``, then lease owner, token and
    expiry) to ``owner``."""
    ident, previous_owner = row[0], row[14]
    token = row[15] + 1
    expires = now + lease_for
    state: dict[str, Any] = _loads(row[2])
    status = row[6]
    # Taking a running execution's lease (expired or stolen) means its runner is gone,
    # whoever that was: a worker may reclaim its own expired lease after an outage.
    recovered = (
        status == _RUNNING
        and previous_owner is not None
        and (previous_owner != owner or row[16] is None or row[16] <= q.to_us(now))
    )
    if start and status == _PENDING:
        status = _RUNNING
        if state.get("started_at") is None:
            state["started_at"] = q.to_us(now)
        conn.execute(
            q.GRANT_START, (owner, token, q.to_us(expires), _dumps(state, option=_OPT), ident)
        )
    else:
        conn.execute(q.GRANT, (owner, token, q.to_us(expires), ident))
    lease = Lease(execution_id=ident, owner=owner, token=token, expires_at=expires)
    execution = _build(conn, row, history=True, state=state, status=status)
    return Acquired(execution=execution, lease=lease, recovered=recovered)


def acquire(
    conn: sqlite3.Connection,
    execution_id: str,
    owner: str,
    now: datetime,
    lease_for: timedelta,
    steal: bool,
    start: bool = True,
    failed: bool = False,
) -> Acquired:
    """Lease one execution if it is not terminal (or ``failed`` and asked for) and its
    lease is free (or stolen)."""
    row = conn.execute(q.SELECT_FOR_ACQUIRE, (execution_id,)).fetchone()
    if row is None:
        raise errors.ExecutionNotFound(execution_id)
    lease_owner, expires = row[14], row[16]
    free = lease_owner is None or lease_owner == owner or expires <= q.to_us(now)
    status = row[6]
    revivable = failed and status == "failed"
    if (status in TERMINAL and not revivable) or not (free or steal):
        return Acquired(execution=_build(conn, row, history=True), lease=None)
    return _grant(conn, row, owner, now, lease_for, start)


def claim(
    conn: sqlite3.Connection,
    owner: str,
    now: datetime,
    lease_for: timedelta,
    limit: int,
    flows: str | None = None,
) -> list[Acquired]:
    """Lease up to ``limit`` runnable executions, oldest first (``flows``: a JSON list of
    ``[flow_id, version]`` pairs to restrict the claim to).

    The caller's BEGIN IMMEDIATE holds the write lock from this SELECT to the UPDATEs,
    so a claimer in another process cannot pick the same rows in between.
    """
    params = {"now": q.to_us(now), "limit": limit, "flows": flows}
    sql = q.SELECT_CLAIMABLE if flows is None else q.SELECT_CLAIMABLE_OF_FLOWS
    found = conn.execute(sql, params).fetchall()
    return [_grant(conn, row, owner, now, lease_for) for row in found]


def append_event(conn: sqlite3.Connection, event: Event, now: int) -> Event | None:
    """``Store.append_event``: ``event`` gets the execution's next sequence and tenant."""
    eid = event.execution_id
    assert eid is not None
    row = conn.execute(q.SELECT_FOR_APPEND, (eid,)).fetchone()
    if row is None:
        raise errors.ExecutionNotFound(eid)
    status, state_blob, owner, expires, tenant_id = row
    fence = False
    if status not in TERMINAL and owner is not None:
        if expires is None or expires > now:
            return None
        fence = True  # the lease expired: its stalled holder must not commit after this
    state = _loads(state_blob)
    state["event_seq"] = sequence = int(state.get("event_seq") or 0) + 1
    conn.execute(
        q.UPDATE_STATE_FENCED if fence else q.UPDATE_STATE, (_dumps(state, option=_OPT), eid)
    )
    stored = Event(event.type, eid, event.timestamp, event.data, sequence, tenant_id)
    conn.execute(q.INSERT_EVENT, q.event_params(eid, [stored]))
    return stored


def commit(
    conn: sqlite3.Connection,
    lease: Lease,
    step: StepCommit,
    state: CommitRow,
    narrow: bool = False,
) -> None:
    """Write one step: the fenced header UPDATE first, then only what changed.

    ``narrow``: the caller knows status and the timer columns are what this lease holder
    last wrote, so the UPDATE leaves them (and their indexes) alone.
    """
    eid = lease.execution_id
    status, updated, wake, deadline, wait_deadline, state_blob, checkpoint = state
    release = step.release or status in TERMINAL
    if narrow and not release:
        cursor = conn.execute(
            q.COMMIT_NARROW, (updated, state_blob, checkpoint, eid, lease.token, lease.owner)
        )
    else:
        sql = q.COMMIT_RELEASE if release else q.COMMIT_KEEP
        cursor = conn.execute(
            sql,
            (status, updated, wake, deadline, wait_deadline, state_blob, checkpoint,
             eid, lease.token, lease.owner),
        )  # fmt: skip
    if cursor.rowcount != 1:
        _raise_lost(conn, eid)
    if step.use_resume_token is not None:
        # Checked before any other write; raising rolls the header UPDATE back too.
        cursor = conn.execute(q.USE_RESUME_TOKEN, (updated, step.use_resume_token, eid))
        if cursor.rowcount != 1:
            _raise_bad_token(conn, step.use_resume_token, eid)
    if step.context_delete:
        conn.executemany(q.DELETE_CONTEXT, [(eid, k) for k in step.context_delete])
    if step.context_set:
        conn.executemany(q.UPSERT_CONTEXT, [(eid, k, v) for k, v in step.context_set.items()])
    if step.history:
        conn.executemany(q.INSERT_STEP, [q.step_params(eid, r) for r in step.history])
    if step.events:
        conn.execute(q.INSERT_EVENT, q.event_params(eid, step.events))
    if step.resume_tokens:
        conn.executemany(
            q.INSERT_RESUME_TOKEN, [q.resume_token_params(r) for r in step.resume_tokens]
        )
    if step.revoke_step_tokens:
        conn.executemany(q.REVOKE_STEP_TOKENS, [(eid, s) for s in step.revoke_step_tokens])
    if step.revoke_resume_tokens:
        conn.execute(q.REVOKE_RESUME_TOKENS, (eid,))
    if step.tasks:
        conn.executemany(q.UPSERT_TASK, [q.task_params(t) for t in step.tasks])
    if step.cancel_pending_tasks:
        conn.execute(q.CANCEL_PENDING_TASKS, (eid,))
    if step.table_rows:
        tables.sqlite_insert_rows(conn, step.table_rows)


def _raise_lost(conn: sqlite3.Connection, execution_id: str) -> None:
    if conn.execute(q.EXECUTION_EXISTS, (execution_id,)).fetchone() is None:
        raise errors.ExecutionNotFound(execution_id)
    raise errors.LeaseLost(execution_id)


def _raise_bad_token(conn: sqlite3.Connection, token_hash: str, execution_id: str) -> None:
    row = conn.execute(q.SELECT_RESUME_TOKEN, (token_hash,)).fetchone()
    if row is None or row[1] != execution_id:
        raise errors.InvalidResumeToken("unknown token")
    raise errors.InvalidResumeToken(f"token is {row[5]}")


def fenced(conn: sqlite3.Connection, sql: str, value: Any, lease: Lease) -> None:
    """Run a one-value UPDATE guarded by the lease (heartbeat, checkpoint)."""
    cursor = conn.execute(sql, (value, lease.execution_id, lease.token, lease.owner))
    if cursor.rowcount != 1:
        _raise_lost(conn, lease.execution_id)


def release(conn: sqlite3.Connection, lease: Lease) -> None:
    """Drop the lease if it is still this one."""
    conn.execute(q.RELEASE, (lease.execution_id, lease.token, lease.owner))


# -- flows --------------------------------------------------------------------------------


def save_flow(conn: sqlite3.Connection, definition: dict[str, Any], now: datetime) -> bool:
    """Insert one flow version; an existing version must be identical."""
    flow_id, version = str(definition.get("id")), str(definition.get("version"))
    blob = _dumps(definition, option=_OPT)
    row = conn.execute(q.SELECT_FLOW, (flow_id, version)).fetchone()
    if row is None:
        conn.execute(q.INSERT_FLOW, (flow_id, version, blob, q.to_us(now)))
        return True
    if _loads(row[0]) == _loads(blob):
        return False
    raise errors.FlowValidationError(
        flow_id,
        [errors.ValidationIssue(
            "version",
            f"version {version} of flow {flow_id} is already stored with a different "
            "definition; versions are immutable, publish a new version",
        )],
    )  # fmt: skip


def _flow(conn: sqlite3.Connection, flow_id: str, version: str) -> StoredFlow | None:
    row = conn.execute(q.SELECT_FLOW, (flow_id, version)).fetchone()
    if row is None:
        return None
    return StoredFlow(
        flow_id=flow_id, version=version, definition=_loads(row[0]), created_at=q.from_us(row[1])
    )


def get_flow(conn: sqlite3.Connection, flow_id: str, version: str | None) -> StoredFlow | None:
    """One version, or the latest by semver."""
    if version is None:
        versions = [v for (v,) in conn.execute(q.SELECT_FLOW_VERSIONS, (flow_id,))]
        if not versions:
            return None
        version = max(versions, key=semver_key)
    return _flow(conn, flow_id, version)


def list_flows(conn: sqlite3.Connection) -> list[StoredFlow]:
    """The latest version of every flow, by flow id."""
    versions: dict[str, list[str]] = {}
    for flow_id, version in conn.execute(q.SELECT_ALL_FLOW_VERSIONS):
        versions.setdefault(flow_id, []).append(version)
    out = []
    for flow_id in sorted(versions):
        stored = _flow(conn, flow_id, max(versions[flow_id], key=semver_key))
        assert stored is not None  # read in the same transaction
        out.append(stored)
    return out


# -- migrations ---------------------------------------------------------------------------


class MigrationTarget:
    """``migrate.MigrationTarget`` on a connection inside an IMMEDIATE transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def current_version(self) -> int:
        """Highest applied version (creates the version table on first use)."""
        self._conn.execute(migrate.VERSION_TABLE_DDL)
        (version,) = self._conn.execute(q.SELECT_SCHEMA_VERSION).fetchone()
        return int(version or 0)

    def apply(self, migration: migrate.Migration) -> None:
        """Run the migration's statements and record its version (same transaction)."""
        for statement in q.split_statements(migration.sql):
            self._conn.execute(statement)
        applied_at = datetime.now(UTC).isoformat()
        self._conn.execute(q.INSERT_SCHEMA_VERSION, (migration.version, migration.name, applied_at))

"""SQL text and row codecs of ``SqliteStore``.

Every statement is a module constant so sqlite3's statement cache prepares it once and
a step commit pays no string building. Times are integer microseconds since the epoch
(UTC); the codecs below convert them back to aware UTC ``datetime``s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, StepRecord, TokenStatus
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.stores import compact

__all__ = [
    "COMMIT_NARROW",
    "INFO_KEYS",
    "EXEC_COLUMNS",
    "compact_state",
    "execution_from_row",
    "from_us",
    "info_blob",
    "opt_dt",
    "opt_us",
    "resume_token_from_row",
    "resume_token_params",
    "split_statements",
    "step_from_blob",
    "state_params",
    "task_from_row",
    "task_params",
    "to_us",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_WAITING = TokenStatus.WAITING
_OPT = orjson.OPT_NON_STR_KEYS
_dumps = orjson.dumps
_loads = orjson.loads

INFO_KEYS = frozenset({
    "id", "flow_id", "flow_version", "created_at", "tenant_id", "metadata",
    "correlation_id", "user_id", "idempotency_key", "idempotency_expires_at",
    "parent_execution_id", "parent_step_id", "execution_timeout_ms", "wait_timeout_ms",
    "depth",
})  # fmt: skip
"""Header keys fixed at create: stored once in ``info`` and never rewritten by a commit.
Every other ``header_dict`` key (except ``checkpoint``, which has its own column) is
``state`` and rewritten by each commit, so a new header field is mutable by default."""


# -- times ----------------------------------------------------------------------------


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICRO


def opt_us(value: datetime | None) -> int | None:
    """``to_us`` that passes ``None`` through."""
    return None if value is None else to_us(value)


def from_us(value: int) -> datetime:
    """Inverse of ``to_us``: an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


def opt_dt(value: int | None) -> datetime | None:
    """``from_us`` that passes ``None`` through."""
    return None if value is None else _EPOCH + timedelta(microseconds=value)


# -- executions -----------------------------------------------------------------------


# Header fields that are columns of ``executions``: neither JSON document repeats them.
_INFO_COLUMNS = frozenset({
    "id", "flow_id", "flow_version", "created_at", "tenant_id", "correlation_id",
    "parent_execution_id",
})  # fmt: skip
_STATE_COLUMNS = frozenset({"status", "updated_at", "wake_at", "deadline_at"})


def info_blob(header: dict[str, Any]) -> bytes:
    """JSON of the create-time header fields the columns do not hold (``None`` and empty
    values left out: the header reader defaults them)."""
    return _dumps(
        {k: v for k, v in header.items() if k in INFO_KEYS and k not in _INFO_COLUMNS and v},
        option=_OPT,
    )


def compact_state(state: dict[str, Any]) -> dict[str, Any]:
    """``Execution.state_dict()`` as stored: no column-held fields, no ``None`` or empty
    values, times in microseconds."""
    out = {k: v for k, v in state.items() if k not in _STATE_COLUMNS and v is not None}
    compact.times_to_us(out)
    if not out.get("retry_attempts", True):
        del out["retry_attempts"]
    return out


def state_params(
    execution: Execution,
) -> tuple[str, int, int | None, int | None, int | None, bytes, bytes | None]:
    """``(status, updated_at, wake_at, deadline_at, wait_deadline_at, state, checkpoint)``
    column values for the mutable part of an execution."""
    state = compact_state(execution.state_dict())
    checkpoint = execution.checkpoint
    wait_deadline: datetime | None = None
    for token in execution.tokens:
        at = token.wait_deadline_at
        if (
            at is not None
            and token.status is _WAITING
            and (wait_deadline is None or at < wait_deadline)
        ):
            wait_deadline = at
    return (
        execution.status.value,
        to_us(execution.updated_at),
        opt_us(execution.wake_at),
        opt_us(execution.deadline_at),
        opt_us(wait_deadline),
        _dumps(state, option=_OPT),
        None if checkpoint is None else _dumps(checkpoint, option=_OPT),
    )


def execution_from_row(
    row: Sequence[Any],
    context: dict[str, Any],
    history: list[StepRecord],
    *,
    state: dict[str, Any] | None = None,
    status: str | None = None,
) -> Execution:
    """Rebuild an ``Execution`` from a row starting with ``EXEC_COLUMNS`` (``state`` and
    ``status`` override the stored ones, as a grant just wrote them)."""
    data = _loads(row[1])
    data.update(_loads(row[2]) if state is None else state)
    compact.restore_times(data)
    data["id"], data["flow_id"], data["flow_version"] = row[0], row[4], row[5]
    data["status"] = row[6] if status is None else status
    data["tenant_id"], data["correlation_id"], data["parent_execution_id"] = row[7:10]
    data["created_at"] = from_us(row[10])
    data["updated_at"] = from_us(row[11])
    data["wake_at"] = opt_dt(row[12])
    data["deadline_at"] = opt_dt(row[13])
    data["checkpoint"] = None if row[3] is None else _loads(row[3])
    return Execution.from_header(data, context=context, history=history)


def step_params(execution_id: str, record: StepRecord) -> tuple[str, int, bytes]:
    """A history row of ``events`` (negative sequence, type ``$step``)."""
    return (execution_id, to_us(record.finished_at), compact.step_blob(record))


step_from_blob = compact.step_from_blob


def event_params(
    execution_id: str, events: Sequence[Event]
) -> tuple[str, int, str, int, str | None, bytes]:
    """The one ``events`` row of one commit's events (``compact.event_row``)."""
    sequence, type_, timestamp, tenant_id, data = compact.event_row(execution_id, events)
    return (execution_id, sequence, type_, to_us(timestamp), tenant_id, data)


def events_from_row(
    execution_id: str, row: sqlite3.Row | tuple[Any, ...], after: int
) -> list[Event]:
    """Inverse of ``event_params`` for ``SELECT sequence, type, timestamp, tenant_id, data``
    (the events with ``sequence > after``)."""
    sequence, type_, timestamp, tenant_id, data = row
    return compact.expand_event_row(
        execution_id, sequence, type_, from_us(timestamp), tenant_id, data, after
    )


# -- resume tokens and tasks --------------------------------------------------------------


def resume_token_params(record: ResumeTokenRecord) -> tuple[Any, ...]:
    """Row of ``resume_tokens`` (column order of ``INSERT_RESUME_TOKEN``)."""
    return (
        record.token_hash,
        record.execution_id,
        record.step_id,
        to_us(record.created_at),
        opt_us(record.expires_at),
        record.status,
        opt_us(record.used_at),
    )


def resume_token_from_row(row: tuple[Any, ...]) -> ResumeTokenRecord:
    """Inverse of ``resume_token_params``."""
    token_hash, execution_id, step_id, created_at, expires_at, status, used_at = row
    return ResumeTokenRecord(
        token_hash=token_hash,
        execution_id=execution_id,
        step_id=step_id,
        created_at=from_us(created_at),
        expires_at=opt_dt(expires_at),
        status=status,
        used_at=opt_dt(used_at),
    )


def _opt_json(value: Any) -> bytes | None:
    return None if value is None else _dumps(value, option=_OPT)


def _opt_load(value: bytes | None) -> Any:
    return None if value is None else _loads(value)


def task_params(task: Task) -> tuple[Any, ...]:
    """Row of ``tasks`` (column order of ``UPSERT_TASK``)."""
    return (
        task.id, task.execution_id, task.step_id, task.tenant_id, task.title,
        task.description, task.assignee, task.role, task.priority, task.status,
        _opt_json(task.form), _opt_json(task.output), to_us(task.created_at),
        opt_us(task.due_at), opt_us(task.completed_at), task.completed_by, task.token_id,
        task.visit, _dumps(task.metadata, option=_OPT),
    )  # fmt: skip


def task_from_row(row: tuple[Any, ...]) -> Task:
    """Inverse of ``task_params``."""
    (ident, execution_id, step_id, tenant_id, title, description, assignee, role, priority,
     status, form, output, created_at, due_at, completed_at, completed_by, token_id, visit,
     metadata) = row  # fmt: skip
    return Task(
        id=ident,
        execution_id=execution_id,
        step_id=step_id,
        tenant_id=tenant_id,
        title=title,
        description=description,
        assignee=assignee,
        role=role,
        priority=priority,
        status=status,
        form=_opt_load(form),
        output=_opt_load(output),
        created_at=from_us(created_at),
        due_at=opt_dt(due_at),
        completed_at=opt_dt(completed_at),
        completed_by=completed_by,
        token_id=token_id,
        visit=visit,
        metadata=_loads(metadata),
    )


def split_statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would COMMIT first,
    breaking the one-transaction migration)."""
    out: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            out.append(buffer.strip())
            buffer = ""
    if any(line.strip() and not line.lstrip().startswith("--") for line in buffer.splitlines()):
        raise ValueError(f"migration script ends with an unterminated statement: {buffer!r}")
    return out


# -- SQL ------------------------------------------------------------------------------------

EXEC_COLUMNS = (
    "id, info, state, checkpoint, flow_id, flow_version, status, tenant_id, correlation_id, "
    "parent_execution_id, created_at, updated_at, wake_at, deadline_at"
)
"""What ``execution_from_row`` reads (lease columns follow at 14, 15, 16 where selected)."""
_EXEC_COLUMNS = EXEC_COLUMNS

INSERT_EXECUTION = """
INSERT INTO executions (id, flow_id, flow_version, status, tenant_id, correlation_id,
    parent_execution_id, created_at, updated_at, wake_at, deadline_at, wait_deadline_at,
    info, state, checkpoint)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

SELECT_EXECUTION = f"SELECT {_EXEC_COLUMNS} FROM executions WHERE id = ?"

SELECT_FOR_ACQUIRE = (
    f"SELECT {_EXEC_COLUMNS}, lease_owner, lease_token, lease_expires_at "
    "FROM executions WHERE id = ?"
)

SELECT_CONTEXT = "SELECT key, value FROM execution_context WHERE execution_id = ? ORDER BY rowid"

SELECT_HISTORY = (
    "SELECT data FROM events WHERE execution_id = ? AND sequence < 0 ORDER BY sequence DESC"
)

SELECT_CHILDREN = (
    f"SELECT {_EXEC_COLUMNS} FROM executions WHERE parent_execution_id = ? ORDER BY created_at, id"
)

# Runnable: pending or due waiting with no live lease, or running with an expired lease.
# A running execution whose lease was released is left to ``stale`` (the reaper).
# Each kind is read from its own partial index (INDEXED BY: fixed plans, whatever the
# statistics say, and an error instead of a silent table scan if an index went missing),
# at most :limit rows each; only the union of those is sorted oldest first.
_RUNNABLE_ARMS = """
    SELECT * FROM (
        SELECT {columns} FROM executions INDEXED BY executions_pending
        WHERE status = 'pending' AND (lease_owner IS NULL OR lease_expires_at <= :now){flows}
        ORDER BY created_at, id{limit})
    UNION ALL
    SELECT * FROM (
        SELECT {columns} FROM executions INDEXED BY executions_wake
        WHERE status = 'waiting' AND wake_at IS NOT NULL AND wake_at <= :now
          AND (lease_owner IS NULL OR lease_expires_at <= :now){flows}
        ORDER BY wake_at, id{limit})
    UNION ALL
    SELECT * FROM (
        SELECT {columns} FROM executions INDEXED BY executions_running
        WHERE status = 'running' AND lease_expires_at <= :now AND lease_owner IS NOT NULL{flows}
        ORDER BY lease_expires_at, id{limit})
"""
_CLAIMABLE = """
SELECT e.id, e.info, e.state, e.checkpoint, e.flow_id, e.flow_version, e.status, e.tenant_id,
    e.correlation_id, e.parent_execution_id, e.created_at, e.updated_at, e.wake_at,
    e.deadline_at, e.lease_owner, e.lease_token, e.lease_expires_at
FROM ({arms}) AS picked
JOIN executions AS e ON e.id = picked.id
ORDER BY picked.created_at, picked.id
LIMIT :limit
"""
SELECT_CLAIMABLE = _CLAIMABLE.format(
    arms=_RUNNABLE_ARMS.format(columns="id, created_at", flows="", limit=" LIMIT :limit")
)
# The same runnable rows (all of them: they are the work due now), counted per flow.
RUNNABLE_BY_FLOW = (
    "SELECT flow_id, flow_version, COUNT(*) FROM ("
    + _RUNNABLE_ARMS.format(columns="flow_id, flow_version", flows="", limit="")
    + ") GROUP BY flow_id, flow_version"
)
# Only the flows a worker can run (``:flows`` is a JSON list of [flow_id, version]).
_OF_FLOWS = """
          AND (flow_id, flow_version) IN (
            SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]')
            FROM json_each(:flows))"""
SELECT_CLAIMABLE_OF_FLOWS = _CLAIMABLE.format(
    arms=_RUNNABLE_ARMS.format(columns="id, created_at", flows=_OF_FLOWS, limit=" LIMIT :limit")
)

SELECT_FOR_APPEND = """
SELECT status, state, lease_owner, lease_expires_at, tenant_id FROM executions WHERE id = ?
"""
UPDATE_STATE = "UPDATE executions SET state = ? WHERE id = ?"
UPDATE_STATE_FENCED = "UPDATE executions SET state = ?, lease_token = lease_token + 1 WHERE id = ?"

GRANT = "UPDATE executions SET lease_owner = ?, lease_token = ?, lease_expires_at = ? WHERE id = ?"

GRANT_START = """
UPDATE executions SET lease_owner = ?, lease_token = ?, lease_expires_at = ?,
    status = 'running', state = ?
WHERE id = ?
"""

# The fence: the row is written only while the caller's lease is the current one.
_COMMIT_SET = """
UPDATE executions SET status = ?, updated_at = ?, wake_at = ?, deadline_at = ?,
    wait_deadline_at = ?, state = ?, checkpoint = ?{release}
WHERE id = ? AND lease_token = ? AND lease_owner = ?
"""
COMMIT_KEEP = _COMMIT_SET.format(release="")
# When status and the timer columns are what this lease holder last wrote, leave them out
# of the SET list: SQLite rewrites every index on a column that is SET, even to the same
# value, and the executions table indexes all four (about a sixth of a commit).
COMMIT_NARROW = """
UPDATE executions SET updated_at = ?, state = ?, checkpoint = ?
WHERE id = ? AND lease_token = ? AND lease_owner = ?
"""
COMMIT_RELEASE = _COMMIT_SET.format(release=", lease_owner = NULL, lease_expires_at = NULL")

HEARTBEAT = """
UPDATE executions SET lease_expires_at = ?
WHERE id = ? AND lease_token = ? AND lease_owner = ?
"""

RELEASE = """
UPDATE executions SET lease_owner = NULL, lease_expires_at = NULL
WHERE id = ? AND lease_token = ? AND lease_owner = ?
"""

SAVE_CHECKPOINT = """
UPDATE executions SET checkpoint = ? WHERE id = ? AND lease_token = ? AND lease_owner = ?
"""

EXECUTION_EXISTS = "SELECT 1 FROM executions WHERE id = ?"

UPSERT_CONTEXT = """
INSERT INTO execution_context (execution_id, key, value) VALUES (?, ?, ?)
ON CONFLICT (execution_id, key) DO UPDATE SET value = excluded.value
"""

DELETE_CONTEXT = "DELETE FROM execution_context WHERE execution_id = ? AND key = ?"

# The next seq comes from a seek to the end of this execution's records (the page the row
# goes to anyway), not from a read of the history; the lease serialises writers.
INSERT_STEP = """
INSERT INTO events (execution_id, sequence, type, timestamp, tenant_id, data)
SELECT ?1, COALESCE(MIN(sequence), 0) - 1, '$step', ?2, NULL, ?3
FROM events WHERE execution_id = ?1 AND sequence < 0
"""

INSERT_EVENT = """
INSERT INTO events (execution_id, sequence, type, timestamp, tenant_id, data)
VALUES (?, ?, ?, ?, ?, ?)
"""

SELECT_EVENTS = """
SELECT sequence, type, timestamp, tenant_id, data FROM events
WHERE execution_id = ? AND sequence > ? ORDER BY sequence
"""

SELECT_IDEMPOTENCY = """
SELECT execution_id, expires_at FROM idempotency_keys
WHERE tenant_id = ? AND flow_id = ? AND key = ?
"""

UPSERT_IDEMPOTENCY = """
INSERT INTO idempotency_keys (tenant_id, flow_id, key, execution_id, expires_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, flow_id, key) DO UPDATE
SET execution_id = excluded.execution_id, expires_at = excluded.expires_at
"""

_UNLEASED = "(lease_owner IS NULL OR lease_expires_at <= :now)"

# One indexed range per kind of due time, each stopping at the first row not yet due
# (so a million parked executions cost nothing); only the due rows are grouped and sorted
# by the earliest due time (the first thing that became due), then id.
SELECT_DUE = f"""
SELECT id FROM (
    SELECT * FROM (
        SELECT id, wake_at AS due_at FROM executions INDEXED BY executions_wake
        WHERE status = 'waiting' AND wake_at IS NOT NULL AND wake_at <= :now AND {_UNLEASED}
        ORDER BY wake_at, id LIMIT :limit)
    UNION ALL
    SELECT * FROM (
        SELECT id, deadline_at AS due_at FROM executions INDEXED BY executions_deadline
        WHERE deadline_at IS NOT NULL AND status NOT IN ('completed', 'failed', 'cancelled')
          AND deadline_at <= :now AND {_UNLEASED}
        ORDER BY deadline_at, id LIMIT :limit)
    UNION ALL
    SELECT * FROM (
        SELECT id, wait_deadline_at AS due_at FROM executions
            INDEXED BY executions_wait_deadline
        WHERE status = 'waiting' AND wait_deadline_at IS NOT NULL
          AND wait_deadline_at <= :now AND {_UNLEASED}
        ORDER BY wait_deadline_at, id LIMIT :limit)
)
GROUP BY id ORDER BY MIN(due_at), id
LIMIT :limit
"""

# Running executions only (their partial index): live work, never the parked ones.
SELECT_STALE = """
SELECT id FROM executions INDEXED BY executions_running
WHERE status = 'running'
  AND ((lease_owner IS NOT NULL AND lease_expires_at <= :now)
       OR (lease_owner IS NULL AND updated_at < :before))
ORDER BY updated_at, id
LIMIT :limit
"""

INSERT_RESUME_TOKEN = """
INSERT OR REPLACE INTO resume_tokens
    (token_hash, execution_id, step_id, created_at, expires_at, status, used_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""

USE_RESUME_TOKEN = """
UPDATE resume_tokens SET status = 'used', used_at = ?
WHERE token_hash = ? AND execution_id = ? AND status = 'active'
"""

SELECT_RESUME_TOKEN = """
SELECT token_hash, execution_id, step_id, created_at, expires_at, status, used_at
FROM resume_tokens WHERE token_hash = ?
"""

REVOKE_STEP_TOKENS = """
UPDATE resume_tokens SET status = 'revoked'
WHERE execution_id = ? AND step_id = ? AND status = 'active'
"""

REVOKE_RESUME_TOKENS = """
UPDATE resume_tokens SET status = 'revoked' WHERE execution_id = ? AND status = 'active'
"""

_TASK_COLUMNS = """id, execution_id, step_id, tenant_id, title, description, assignee, role,
    priority, status, form, output, created_at, due_at, completed_at, completed_by,
    token_id, visit, metadata"""

UPSERT_TASK = f"""
INSERT OR REPLACE INTO tasks ({_TASK_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

SELECT_TASK = f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?"

SELECT_TASKS = f"SELECT {_TASK_COLUMNS} FROM tasks"

CANCEL_PENDING_TASKS = """
UPDATE tasks SET status = 'cancelled' WHERE execution_id = ? AND status = 'pending'
"""

SELECT_FLOW = "SELECT definition, created_at FROM flows WHERE flow_id = ? AND version = ?"

SELECT_FLOW_VERSIONS = "SELECT version FROM flows WHERE flow_id = ?"

SELECT_ALL_FLOW_VERSIONS = "SELECT flow_id, version FROM flows"

INSERT_FLOW = "INSERT INTO flows (flow_id, version, definition, created_at) VALUES (?, ?, ?, ?)"

SELECT_SCHEMA_VERSION = "SELECT MAX(version) FROM schema_version"

INSERT_SCHEMA_VERSION = "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)"


def count_by_status(tenant_id: str | None, flow_id: str | None) -> tuple[str, dict[str, Any]]:
    """``SELECT status, COUNT(*)`` with only the filters given (so each can use its index)."""
    where = []
    params: dict[str, Any] = {}
    if tenant_id is not None:
        where.append("tenant_id = :tenant_id")
        params["tenant_id"] = tenant_id
    if flow_id is not None:
        where.append("flow_id = :flow_id")
        params["flow_id"] = flow_id
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    return f"SELECT status, COUNT(*) FROM executions {clause}GROUP BY status", params

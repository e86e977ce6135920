"""Turn ``create``/``StepCommit`` payloads into SQL statements (pure, no I/O).

A create, and a commit without resume tokens or tasks, is ONE statement of
data-modifying CTEs (see ``postgres_queries``), atomic without BEGIN/COMMIT. Only what a
step changed is sent: the mutable header, the context keys it set or deleted, and new
rows; empty parts add no CTE at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson

from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.stores import compact
from flowmonkey.stores import postgres_queries as q
from flowmonkey.stores.base import Lease, StepCommit
from flowmonkey.stores.tables import pg_rows_json

__all__ = [
    "Statement",
    "commit_statements",
    "create_statement",
    "encode_spec_of",
    "idempotency_tenant",
    "runnable_now",
    "settle_created",
]

Statement = tuple[str, Any]
"""``(sql, params)``."""

_dumps = orjson.dumps
_loads = orjson.loads


def runnable_now(execution: Execution) -> bool:
    """Whether an unleased execution in this state can be claimed right away.

    Used to decide on a NOTIFY. The store has no clock in ``commit``; the execution's own
    ``updated_at`` stands for "now", which is what the engine stamped on this change.
    """
    if execution.status is ExecutionStatus.PENDING:
        return True
    return (
        execution.status is ExecutionStatus.WAITING
        and execution.wake_at is not None
        and execution.wake_at <= execution.updated_at
    )


# Assembled statement texts by shape. Handing out the same ``str`` object every time also
# lets ``postgres_fast`` find its prepared statement by a hash Python has cached on that
# object, instead of hashing a fresh ~1.5 kB text per statement. Shapes are a few dozen.
_ASSEMBLED: dict[tuple[tuple[str, ...], str, str], str] = {}
_CREATE_ROW = q.CREATE_ROW.replace("{guard}", "TRUE")
_CREATE_ROW_KEY = q.CREATE_ROW.replace("{guard}", q.CREATE_GUARD_KEY)
# A create's context rows: a plain INSERT, not the upsert of ``q.CONTEXT_SET``. Its id is
# new (the ``ins`` CTE, evaluated first by the guard, fails on a taken one), and the
# upsert's speculative insertion costs an extra index probe and WAL record per row.
_CONTEXT_INSERT = """cs AS (
    INSERT INTO execution_context (execution_id, key, value)
    SELECT %(id)s, k, v FROM unnest(%(ctx_keys)s::text[], %(ctx_values)s::bytea[]) AS t(k, v)
    WHERE {guard}
)"""
_CONTEXT_INSERT_ONE = """cs AS (
    INSERT INTO execution_context (execution_id, key, value)
    SELECT %(id)s, %(ctx_key)s::text, %(ctx_value)s::bytea WHERE {guard}
)"""


def _assemble(ctes: list[str], result: str, guard: str) -> str:
    shape = (tuple(ctes), result, guard)
    text = _ASSEMBLED.get(shape)
    if text is None:
        text = ("WITH " + ",\n".join(ctes) + "\n" + result).replace("{guard}", guard)
        _ASSEMBLED[shape] = text
    return text


def _rows(
    params: dict[str, Any], context: dict[str, bytes], history: Sequence[bytes],
    events: Sequence[Event], ctes: list[str], *, new: bool = False,
) -> None:  # fmt: skip
    """Add the context/history/event CTEs a statement needs, and their parameters
    (``new``: the execution is being created, so its context keys cannot exist yet)."""
    if len(context) == 1:
        ((params["ctx_key"], params["ctx_value"]),) = context.items()
        ctes.append(_CONTEXT_INSERT_ONE if new else q.CONTEXT_SET_ONE)
    elif context:
        ctes.append(_CONTEXT_INSERT if new else q.CONTEXT_SET)
        params["ctx_keys"] = list(context)
        params["ctx_values"] = list(context.values())
    if len(history) == 1:
        ctes.append(q.HISTORY_ONE)
        params["record"] = history[0]
    elif history:
        ctes.append(q.HISTORY)
        params["history"] = list(history)
    if events:
        # One row for the commit's events (``compact.event_row``).
        ctes.append(q.INSERT_EVENT_ONE)
        row = compact.event_row(params["id"], events)
        params["ev_seq"], params["ev_type"], params["ev_at"], params["ev_tenant"] = row[:4]
        params["ev_data"] = row[4]


def _resume_tokens(records: Sequence[ResumeTokenRecord]) -> Statement:
    return q.INSERT_RESUME_TOKENS, [
        [r.token_hash for r in records],
        [r.execution_id for r in records],
        [r.step_id for r in records],
        [r.created_at for r in records],
        [r.expires_at for r in records],
        [r.status for r in records],
        [r.used_at for r in records],
    ]


def _tasks(tasks: Sequence[Task]) -> Statement:
    return q.UPSERT_TASKS, [
        [t.id for t in tasks],
        [t.execution_id for t in tasks],
        [t.step_id for t in tasks],
        [t.tenant_id for t in tasks],
        [t.status for t in tasks],
        [t.assignee for t in tasks],
        [t.role for t in tasks],
        [t.created_at for t in tasks],
        [q.encode_task(t) for t in tasks],
    ]


def create_statement(
    execution: Execution,
    events: Sequence[Event],
    channel: str | None,
    lease: Lease | None = None,
) -> tuple[Statement, dict[str, bytes]]:
    """The one statement inserting a new execution (idempotency key, row, context,
    events, NOTIFY), and the encoded context values (for ``settle_created``).

    The statement returns one boolean row: whether the execution was inserted (False
    when an unexpired execution holds the idempotency key). Raises
    ``orjson.JSONEncodeError`` when something is not JSON-serialisable.
    """
    spec, state = encode_spec_of(execution), q.encode_state_of(execution)
    checkpoint = execution.checkpoint
    stored_checkpoint = _dumps(checkpoint) if checkpoint is not None else None
    context = {key: _dumps(value) for key, value in execution.context.items()}
    params: dict[str, Any] = {
        "id": execution.id, "flow_id": execution.flow_id,
        "flow_version": execution.flow_version, "status": str(execution.status),
        "tenant_id": execution.tenant_id, "correlation_id": execution.correlation_id,
        "parent": execution.parent_execution_id, "created_at": execution.created_at,
        "updated_at": execution.updated_at, "started_at": execution.started_at,
        "wake_at": execution.wake_at, "deadline_at": execution.deadline_at,
        "wait_deadline_at": q.wait_deadline(execution), "spec": spec, "state": state,
        "checkpoint": stored_checkpoint,
        "lease_owner": lease.owner if lease is not None else None,
        "lease_token": lease.token if lease is not None else 0,
        "lease_expires_at": lease.expires_at if lease is not None else None,
    }  # fmt: skip
    ctes: list[str] = []
    if execution.idempotency_key is not None:
        ctes.append(q.CREATE_KEY)
        ctes.append(_CREATE_ROW_KEY)
        params["tenant_key"] = idempotency_tenant(execution)
        params["idem_key"] = execution.idempotency_key
        params["idem_expires"] = execution.idempotency_expires_at
    else:
        ctes.append(_CREATE_ROW)
    _rows(params, context, (), events, ctes, new=True)
    result = q.CREATE_RESULT
    if channel is not None and lease is None and runnable_now(execution):
        result += q.CREATE_NOTIFY
        params["channel"] = channel
    return (_assemble(ctes, result, q.CREATE_GUARD), params), context


def encode_spec_of(execution: Execution) -> bytes:
    """``q.encode_spec(execution.header_dict())``, byte for byte, without building the
    whole header (a create needs only the few fields no column or ``state`` holds)."""
    spec = {
        "metadata": execution.metadata,
        "user_id": execution.user_id,
        "idempotency_key": execution.idempotency_key,
        "idempotency_expires_at": execution.idempotency_expires_at,
        "parent_step_id": execution.parent_step_id,
        "depth": execution.depth,
        "execution_timeout_ms": _ms(execution.execution_timeout),
        "wait_timeout_ms": _ms(execution.wait_timeout),
    }
    expires = execution.idempotency_expires_at
    if expires is not None:  # ISO text, as ``header_dict`` has it (orjson's differs)
        spec["idempotency_expires_at"] = expires.isoformat()
    return _dumps({key: value for key, value in spec.items() if value})


def _ms(value: timedelta | None) -> float | None:
    return value.total_seconds() * 1000 if value is not None else None


def settle_created(
    execution: Execution, params: dict[str, Any], context: dict[str, bytes]
) -> Execution:
    """Make ``execution`` (just inserted by ``create_statement``'s ``(query, params)``,
    ``context`` its encoded values) what ``get`` will load, in place; return it.

    Decoding the whole row back costs more than the rest of the statement; only what the
    stored forms change is taken from them: the context, the checkpoint and the spec
    (JSON values, e.g. tuples become lists, and fresh objects the caller cannot mutate),
    the spec fields left out when empty. The header fields kept as columns or in
    ``state`` are stored exactly (microsecond times, plain values) and stay as they are.
    """
    execution.context = {key: _loads(value) for key, value in context.items()}
    checkpoint, spec = params["checkpoint"], params["spec"]
    execution.checkpoint = _loads(checkpoint) if checkpoint is not None else None
    if spec == b"{}":  # the usual create: no metadata, key, parent step or timeouts
        execution.metadata, execution.depth = {}, 0
        execution.user_id = execution.idempotency_key = execution.parent_step_id = None
        execution.idempotency_expires_at = None
        execution.execution_timeout = execution.wait_timeout = None
        return execution
    data = _loads(spec)  # the same rules as ``Execution.from_header``
    expires = data.get("idempotency_expires_at")
    timeout, wait_timeout = data.get("execution_timeout_ms"), data.get("wait_timeout_ms")
    execution.metadata = data.get("metadata") or {}
    execution.user_id = data.get("user_id")
    execution.idempotency_key = data.get("idempotency_key")
    execution.idempotency_expires_at = datetime.fromisoformat(expires) if expires else None
    execution.parent_step_id = data.get("parent_step_id")
    execution.depth = data.get("depth") or 0
    execution.execution_timeout = timedelta(milliseconds=timeout) if timeout else None
    execution.wait_timeout = timedelta(milliseconds=wait_timeout) if wait_timeout else None
    return execution


def idempotency_tenant(execution: Execution) -> str:
    """The tenant part of the idempotency key ('' without a tenant: keys are NOT NULL)."""
    return execution.tenant_id or ""


def commit_statements(
    lease: Lease, commit: StepCommit, channel: str | None, *, events_channel: str | None = None
) -> list[Statement]:
    """Statements applying one ``StepCommit`` under ``lease``; usually exactly one.

    The first statement is fenced and carries the header, resume-token use, context
    (deletes, then sets), history and events; resume tokens and tasks, when present,
    follow as separate statements (so the caller wraps those in a transaction). Raises
    ``orjson.JSONEncodeError`` on values that are not JSON-serialisable.
    """
    execution = commit.execution
    ident = execution.id
    checkpoint = execution.checkpoint
    release = commit.release or execution.status.is_terminal
    params: dict[str, Any] = {
        "id": ident, "token": lease.token, "owner": lease.owner,
        "status": str(execution.status), "updated_at": execution.updated_at,
        "started_at": execution.started_at, "wake_at": execution.wake_at,
        "deadline_at": execution.deadline_at,
        "wait_deadline_at": q.wait_deadline(execution), "state": q.encode_state_of(execution),
        "checkpoint": _dumps(checkpoint) if checkpoint is not None else None,
        "release": release,
    }  # fmt: skip
    ctes = [q.COMMIT_FENCE]
    result = q.COMMIT_RESULT
    if commit.use_resume_token is not None:
        ctes.append(q.COMMIT_USE_TOKEN)
        params["use_token"] = commit.use_resume_token
        result += q.COMMIT_TOKEN_CHECK
    # Deletes and sets run side by side in one statement: a key in both is set (the
    # memory store deletes first, then sets), and must not be touched twice.
    deletes = [key for key in commit.context_delete if key not in commit.context_set]
    if deletes:
        ctes.append(q.CONTEXT_DELETE)
        params["ctx_delete"] = deletes
    history = [compact.step_blob(record) for record in commit.history]
    _rows(params, commit.context_set, history, commit.events, ctes)
    table_rows = commit.table_rows
    if len(table_rows) == 1:  # the usual piped step: scalar parameters (see the CTE)
        ctes.append(q.INSERT_TABLE_ROW_ONE)
        row = table_rows[0]
        params["tr_id"], params["tr_table"], params["tr_tenant"] = row.id, row.table, row.tenant_id
        params["tr_exec"], params["tr_step"], params["tr_at"] = (
            row.execution_id, row.step_id, row.created_at,
        )  # fmt: skip
        params["tr_data"] = _dumps(row.data).decode()
    elif table_rows:
        ctes.append(q.INSERT_TABLE_ROWS)
        params["tr_json"] = pg_rows_json(table_rows)
    # NOTIFY only when this commit hands the execution to other workers: on ordinary
    # steps the lease holder keeps going, and NOTIFY would serialise commits globally.
    if channel is not None and release and runnable_now(execution):
        result += q.COMMIT_NOTIFY
        params["channel"] = channel
    if events_channel is not None and commit.events:  # opt-in: live event streams
        result += q.COMMIT_EVENTS_NOTIFY
        params["events_channel"] = events_channel
    after: list[Statement] = []
    # Revocations ride in the main statement unless new tokens are inserted by this
    # commit (those must exist before "revoke all active" runs): then they follow it.
    if commit.resume_tokens:
        after.append(_resume_tokens(commit.resume_tokens))
        if commit.revoke_step_tokens:
            after.append((q.REVOKE_STEP_TOKENS, [ident, list(commit.revoke_step_tokens)]))
        if commit.revoke_resume_tokens:
            after.append((q.REVOKE_RESUME_TOKENS, [ident]))
    else:
        not_used = q.COMMIT_NOT_USED if commit.use_resume_token is not None else ""
        if commit.revoke_resume_tokens:  # covers the step revocations too
            ctes.append(q.COMMIT_REVOKE_ALL.replace("{not_used}", not_used))
        elif commit.revoke_step_tokens:
            ctes.append(q.COMMIT_REVOKE_STEPS.replace("{not_used}", not_used))
            params["revoke_steps"] = list(commit.revoke_step_tokens)
    if commit.tasks:
        after.append(_tasks(commit.tasks))
        if commit.cancel_pending_tasks:
            after.append((q.CANCEL_PENDING_TASKS, [ident]))
    elif commit.cancel_pending_tasks:
        ctes.append(q.COMMIT_CANCEL_TASKS)
    return [(_assemble(ctes, result, q.COMMIT_GUARD), params), *after]

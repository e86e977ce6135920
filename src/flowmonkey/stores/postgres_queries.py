"""SQL text and row codecs of the PostgreSQL store.

Every statement is a constant (the store never formats user input into SQL), written so
that one step's commit is a handful of statements pipelined in one round trip. Lists
travel as arrays and are expanded with ``unnest`` so a statement's text, and so its
prepared plan, does not depend on how many rows it writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from flowmonkey.model.execution import Execution, TokenStatus
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.stores import compact

__all__ = [
    "decode_execution",
    "decode_task",
    "encode_spec",
    "encode_state",
    "encode_state_of",
    "encode_task",
    "token_from_row",
    "wait_deadline",
]

# -- transaction control ----------------------------------------------------------------

# READ COMMITTED on purpose: claims use SKIP LOCKED and every write is fenced by the lease
# token, so higher isolation would only add serialization failures under concurrency.
BEGIN = b"BEGIN ISOLATION LEVEL READ COMMITTED"
COMMIT = b"COMMIT"

# -- loading executions -----------------------------------------------------------------

# One statement reads header, context and (optionally) history, so everything comes from
# a single snapshot: a concurrent commit can never be seen half-applied.
_LOAD = """
SELECT e.status, e.started_at, e.spec, e.state, e.checkpoint,
       ARRAY(SELECT c.key FROM execution_context c
             WHERE c.execution_id = e.id ORDER BY c.pos) AS ckeys,
       ARRAY(SELECT c.value FROM execution_context c
             WHERE c.execution_id = e.id ORDER BY c.pos) AS cvals,
       {history} AS hist,
       e.id, e.flow_id, e.flow_version, e.tenant_id, e.correlation_id,
       e.parent_execution_id, e.created_at, e.updated_at, e.wake_at, e.deadline_at
FROM executions e
"""
_WITH_HISTORY = (
    "ARRAY(SELECT r.record FROM step_records r WHERE r.execution_id = e.id ORDER BY r.seq)"
)
LOAD_WITH_HISTORY = _LOAD.format(history=_WITH_HISTORY)
LOAD_NO_HISTORY = _LOAD.format(history="NULL::bytea[]")

GET = LOAD_WITH_HISTORY + "WHERE e.id = %s"
GET_NO_HISTORY = LOAD_NO_HISTORY + "WHERE e.id = %s"
GET_MANY = LOAD_WITH_HISTORY + "WHERE e.id = ANY(%s::text[]) ORDER BY e.created_at, e.id"
# A listing page: the keys of each requested status come from that status's index range
# (one UNION ALL arm each, ``LIMIT`` each), so only (statuses x page) keys are ever
# sorted; then the page rows are loaded. Statuses are written into the arms as literals
# (they come from ``ExecutionStatus``, never from user text) so the planner estimates
# each arm from that status's own statistics: waiting rows vastly outnumber the others.
LIST_ARM = """(SELECT id, created_at FROM executions WHERE status = '{status}'{where}
 ORDER BY created_at DESC, id DESC LIMIT %(limit)s)"""
LIST_KEYS = """
SELECT id, created_at FROM (
{arms}
) AS k ORDER BY created_at DESC, id DESC LIMIT %(limit)s
"""
LIST_PAGE = (
    LOAD_NO_HISTORY.replace(
        "FROM executions e\n", "FROM ({keys}) AS page JOIN executions e ON e.id = page.id\n"
    )
    + "ORDER BY page.created_at DESC, page.id DESC"
)
FIND_CHILDREN = LOAD_NO_HISTORY + "WHERE e.parent_execution_id = %s ORDER BY e.created_at, e.id"

# -- create and commit: one statement of data-modifying CTEs ------------------------------
#
# A step's commit is ONE statement: the fenced header UPDATE (`u`) plus one CTE per kind of
# row written, each guarded by `EXISTS (SELECT 1 FROM u)` so nothing is written under a
# lost lease (and a stale writer never collides with the new holder's rows). The final
# SELECT raises FM001 through fm_check when the fence failed, aborting the statement. A
# single statement is atomic on its own, so the common commit needs no BEGIN/COMMIT: one
# round trip, one WAL flush. Fragments are assembled per shape (which parts are present)
# and psycopg prepares each shape once.

# Takes the key, or replaces an expired holder; yields no row while an unexpired
# execution holds it (two racing creates serialise on the primary key).
CREATE_KEY = """k AS (
    INSERT INTO idempotency_keys AS k (tenant_id, flow_id, key, execution_id, expires_at)
    VALUES (%(tenant_key)s, %(flow_id)s, %(idem_key)s, %(id)s, %(idem_expires)s)
    ON CONFLICT (tenant_id, flow_id, key) DO UPDATE
        SET execution_id = EXCLUDED.execution_id, expires_at = EXCLUDED.expires_at
        WHERE k.expires_at IS NULL OR k.expires_at <= %(created_at)s
    RETURNING 1
)"""
CREATE_ROW = """ins AS (
    INSERT INTO executions (id, flow_id, flow_version, status, tenant_id, correlation_id,
        parent_execution_id, created_at, updated_at, started_at, wake_at, deadline_at,
        wait_deadline_at, spec, state, checkpoint, lease_owner, lease_token,
        lease_expires_at)
    SELECT %(id)s::text, %(flow_id)s::text, %(flow_version)s::text, %(status)s::text,
        %(tenant_id)s::text, %(correlation_id)s::text, %(parent)s::text,
        %(created_at)s::timestamptz, %(updated_at)s::timestamptz,
        %(started_at)s::timestamptz, %(wake_at)s::timestamptz,
        %(deadline_at)s::timestamptz, %(wait_deadline_at)s::timestamptz,
        %(spec)s::bytea, %(state)s::bytea, %(checkpoint)s::bytea, %(lease_owner)s::text,
        %(lease_token)s::bigint, %(lease_expires_at)s::timestamptz
    WHERE {guard}
    RETURNING 1
)"""
CREATE_GUARD = "EXISTS (SELECT 1 FROM ins)"
CREATE_GUARD_KEY = "EXISTS (SELECT 1 FROM k)"
CREATE_RESULT = "SELECT EXISTS (SELECT 1 FROM ins)"
CREATE_NOTIFY = ", (SELECT pg_notify(%(channel)s, %(id)s) FROM ins)"
IDEMPOTENCY_HOLDER = """
SELECT execution_id FROM idempotency_keys
WHERE tenant_id = %(tenant_key)s AND flow_id = %(flow_id)s AND key = %(idem_key)s
"""

COMMIT_FENCE = """u AS (
    UPDATE executions SET
        status = %(status)s, updated_at = %(updated_at)s, started_at = %(started_at)s,
        wake_at = %(wake_at)s, deadline_at = %(deadline_at)s,
        wait_deadline_at = %(wait_deadline_at)s,
        state = %(state)s, checkpoint = %(checkpoint)s,
        lease_owner = CASE WHEN %(release)s THEN NULL ELSE lease_owner END,
        lease_expires_at = CASE WHEN %(release)s THEN NULL ELSE lease_expires_at END
    WHERE id = %(id)s AND lease_token = %(token)s AND lease_owner = %(owner)s
    RETURNING 1
)"""
COMMIT_GUARD = "EXISTS (SELECT 1 FROM u)"
COMMIT_USE_TOKEN = """tok AS (
    UPDATE resume_tokens SET status = 'used', used_at = %(updated_at)s
    WHERE token_hash = %(use_token)s AND execution_id = %(id)s AND status = 'active'
      AND {guard}
    RETURNING 1
)"""
COMMIT_RESULT = "SELECT fm_check({guard}, 'FM001', %(id)s)"
COMMIT_TOKEN_CHECK = (
    ", fm_check(EXISTS (SELECT 1 FROM tok), 'FM002',"
    " 'token is unknown, not active, or for another execution')"
)
COMMIT_NOTIFY = ", pg_notify(%(channel)s, %(id)s)"
COMMIT_EVENTS_NOTIFY = ", pg_notify(%(events_channel)s, %(id)s)"

# Token revocation and task cancellation as parts of the commit statement (used when the
# same commit inserts no tokens or tasks: CTEs share one snapshot, so a CTE would not see
# rows inserted beside it). A row must not be updated by two CTEs of one statement: the
# token being used (``tok``) is excluded from the revocations.
COMMIT_REVOKE_ALL = """rv AS (
    UPDATE resume_tokens SET status = 'revoked'
    WHERE execution_id = %(id)s AND status = 'active'{not_used} AND {guard}
)"""
COMMIT_REVOKE_STEPS = """rs AS (
    UPDATE resume_tokens SET status = 'revoked'
    WHERE execution_id = %(id)s AND step_id = ANY(%(revoke_steps)s::text[])
      AND status = 'active'{not_used} AND {guard}
)"""
COMMIT_NOT_USED = " AND token_hash <> %(use_token)s"
COMMIT_CANCEL_TASKS = """tc AS (
    UPDATE tasks SET status = 'cancelled'
    WHERE execution_id = %(id)s AND status = 'pending' AND {guard}
)"""

CONTEXT_DELETE = """cd AS (
    DELETE FROM execution_context
    WHERE execution_id = %(id)s AND key = ANY(%(ctx_delete)s::text[]) AND {guard}
)"""
CONTEXT_SET = """cs AS (
    INSERT INTO execution_context (execution_id, key, value)
    SELECT %(id)s, k, v FROM unnest(%(ctx_keys)s::text[], %(ctx_values)s::bytea[]) AS t(k, v)
    WHERE {guard}
    ON CONFLICT (execution_id, key) DO UPDATE SET value = EXCLUDED.value
)"""
HISTORY = """h AS (
    INSERT INTO step_records (execution_id, record)
    SELECT %(id)s, r FROM unnest(%(history)s::bytea[]) WITH ORDINALITY AS t(r, n)
    WHERE {guard} ORDER BY n
)"""
# Pipe rows of the step (``StepCommit.table_rows``), as one json parameter like the events.
INSERT_TABLE_ROWS = """tr AS (
    INSERT INTO table_rows (id, table_name, tenant_id, execution_id, step_id, created_at,
        data)
    SELECT r->>0, r->>1, r->>2, r->>3, r->>4, (r->>5)::timestamptz, (r->6)::jsonb
    FROM json_array_elements(%(tr_json)s::json) WITH ORDINALITY AS t(r, n)
    WHERE {guard} ORDER BY n
)"""

# Single-row variants of the two CTEs above: the usual step writes one context key and one
# history record, and scalar parameters cost psycopg far less to adapt than arrays (whose
# element type it re-inspects on every call). A commit's events are always ONE row
# (``compact.event_row``).
CONTEXT_SET_ONE = """cs AS (
    INSERT INTO execution_context (execution_id, key, value)
    SELECT %(id)s, %(ctx_key)s::text, %(ctx_value)s::bytea WHERE {guard}
    ON CONFLICT (execution_id, key) DO UPDATE SET value = EXCLUDED.value
)"""
HISTORY_ONE = """h AS (
    INSERT INTO step_records (execution_id, record)
    SELECT %(id)s, %(record)s::bytea WHERE {guard}
)"""
# The usual piped step writes ONE row: scalar parameters, so the server neither parses a
# json document nor runs ``json_array_elements`` and its casts (about 30 us of server CPU
# per row, measured with pgbench), and the client sends the data as jsonb text as is.
INSERT_TABLE_ROW_ONE = """tr AS (
    INSERT INTO table_rows (id, table_name, tenant_id, execution_id, step_id, created_at,
        data)
    SELECT %(tr_id)s::text, %(tr_table)s::text, %(tr_tenant)s::text, %(tr_exec)s::text,
           %(tr_step)s::text, %(tr_at)s::timestamptz, %(tr_data)s::jsonb
    WHERE {guard}
)"""
INSERT_EVENT_ONE = """ev AS (
    INSERT INTO events (execution_id, sequence, type, at, tenant_id, data)
    SELECT %(id)s, %(ev_seq)s::bigint, %(ev_type)s::text, %(ev_at)s::timestamptz,
           %(ev_tenant)s::text, %(ev_data)s::bytea
    WHERE {guard}
)"""

# Rarely used parts of a commit run as further statements of the same transaction, after
# the fenced statement (which aborts the transaction when the lease was lost). Their
# order mirrors MemoryStore.commit: new resume tokens, then revocation; tasks, then
# cancellation of pending tasks.
INSERT_RESUME_TOKENS = """
INSERT INTO resume_tokens (token_hash, execution_id, step_id, created_at, expires_at,
    status, used_at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[],
    %s::timestamptz[], %s::text[], %s::timestamptz[])
ON CONFLICT (token_hash) DO UPDATE SET
    execution_id = EXCLUDED.execution_id, step_id = EXCLUDED.step_id,
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
    status = EXCLUDED.status, used_at = EXCLUDED.used_at
"""
REVOKE_STEP_TOKENS = (
    "UPDATE resume_tokens SET status = 'revoked'"
    " WHERE execution_id = %s AND step_id = ANY(%s) AND status = 'active'"
)
REVOKE_RESUME_TOKENS = (
    "UPDATE resume_tokens SET status = 'revoked' WHERE execution_id = %s AND status = 'active'"
)
UPSERT_TASKS = """
INSERT INTO tasks (id, execution_id, step_id, tenant_id, status, assignee, role,
    created_at, doc)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
    %s::text[], %s::text[], %s::timestamptz[], %s::bytea[])
ON CONFLICT (id) DO UPDATE SET
    execution_id = EXCLUDED.execution_id, step_id = EXCLUDED.step_id,
    tenant_id = EXCLUDED.tenant_id, status = EXCLUDED.status,
    assignee = EXCLUDED.assignee, role = EXCLUDED.role,
    created_at = EXCLUDED.created_at, doc = EXCLUDED.doc
"""
CANCEL_PENDING_TASKS = (
    "UPDATE tasks SET status = 'cancelled' WHERE execution_id = %s AND status = 'pending'"
)

# -- leases ------------------------------------------------------------------------------

_GRANT = """
    lease_owner = %(owner)s, lease_token = e.lease_token + 1,
    lease_expires_at = %(expires)s,
    status = CASE WHEN e.status = 'pending' AND %(start)s THEN 'running' ELSE e.status END,
    started_at = CASE WHEN e.status = 'pending' AND %(start)s
                      THEN COALESCE(e.started_at, %(now)s) ELSE e.started_at END
"""
# `old` locks the row and keeps its pre-update status/owner (RETURNING only sees new
# values on PostgreSQL < 18): taking a running execution from another owner is a recovery.
ACQUIRE = f"""
UPDATE executions e SET {_GRANT}
FROM (SELECT id, status, lease_owner, lease_expires_at FROM executions
      WHERE id = %(id)s FOR UPDATE) AS old
WHERE e.id = old.id
  AND (e.status NOT IN ('completed', 'failed', 'cancelled')
       OR (%(failed)s AND e.status = 'failed'))
  AND (e.lease_owner IS NULL OR e.lease_owner = %(owner)s
       OR e.lease_expires_at <= %(now)s OR %(steal)s)
RETURNING e.lease_token,
    (old.status = 'running' AND old.lease_owner IS NOT NULL
     AND (old.lease_owner <> %(owner)s OR old.lease_expires_at <= %(now)s)) AS recovered
"""

# Each kind of runnable row is read from its own partial index, oldest first, locking
# with SKIP LOCKED so concurrent claimers take disjoint rows instead of queueing on the
# same ones; the union is then cut to `limit`, oldest (created_at, id) first.
_CLAIM = f"""
WITH pending AS (
    SELECT id, created_at, false AS recovered FROM executions
    WHERE status = 'pending' AND (lease_owner IS NULL OR lease_expires_at <= %(now)s){{flows}}
    ORDER BY created_at, id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), woken AS (
    SELECT id, created_at, false AS recovered FROM executions
    WHERE status = 'waiting' AND wake_at <= %(now)s
      AND (lease_owner IS NULL OR lease_expires_at <= %(now)s){{flows}}
    ORDER BY wake_at, id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT id, created_at, true AS recovered FROM executions
    WHERE status = 'running' AND lease_owner IS NOT NULL AND lease_expires_at <= %(now)s{{flows}}
    ORDER BY lease_expires_at, id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id, recovered FROM (
        SELECT * FROM pending UNION ALL SELECT * FROM woken UNION ALL SELECT * FROM expired
    ) AS candidates
    ORDER BY created_at, id LIMIT %(limit)s
)
UPDATE executions e SET {_GRANT}
FROM picked WHERE e.id = picked.id
RETURNING e.id, e.lease_token, picked.recovered
"""
CLAIM = _CLAIM.format(flows="")
# Only the flows a worker can run (parallel arrays of flow ids and versions).
CLAIM_OF_FLOWS = _CLAIM.format(
    flows="""
      AND (flow_id, flow_version) IN (
        SELECT f, v FROM unnest(%(flow_ids)s::text[], %(flow_versions)s::text[]) AS k(f, v))"""
)
HEARTBEAT = """
UPDATE executions SET lease_expires_at = %(expires)s
WHERE id = %(id)s AND lease_token = %(token)s AND lease_owner = %(owner)s
RETURNING 1
"""
RELEASE = """
UPDATE executions SET lease_owner = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND lease_token = %(token)s AND lease_owner = %(owner)s
"""
SAVE_CHECKPOINT = """
UPDATE executions SET checkpoint = %(checkpoint)s
WHERE id = %(id)s AND lease_token = %(token)s AND lease_owner = %(owner)s
RETURNING 1
"""

# -- scheduler queries -------------------------------------------------------------------

_UNLEASED = "(lease_owner IS NULL OR lease_expires_at <= %(now)s)"
# Runnable rows per flow: one partial-index read per kind of runnable row (as CLAIM).
RUNNABLE_BY_FLOW = f"""
SELECT flow_id, flow_version, count(*) FROM (
    SELECT flow_id, flow_version FROM executions WHERE status = 'pending' AND {_UNLEASED}
    UNION ALL
    SELECT flow_id, flow_version FROM executions
    WHERE status = 'waiting' AND wake_at <= %(now)s AND {_UNLEASED}
    UNION ALL
    SELECT flow_id, flow_version FROM executions
    WHERE status = 'running' AND lease_owner IS NOT NULL AND lease_expires_at <= %(now)s
) AS runnable
GROUP BY flow_id, flow_version
"""
# One partial-index range per kind of due time, each cut to `limit` rows, so a pass
# reads only due rows however many are parked; only those few are grouped and sorted.
DUE = f"""
SELECT id FROM (
    (SELECT id, wake_at AS due_at FROM executions
     WHERE status = 'waiting' AND wake_at <= %(now)s AND {_UNLEASED}
     ORDER BY wake_at, id LIMIT %(limit)s)
    UNION ALL
    (SELECT id, deadline_at FROM executions
     WHERE deadline_at <= %(now)s AND status NOT IN ('completed', 'failed', 'cancelled')
       AND {_UNLEASED}
     ORDER BY deadline_at LIMIT %(limit)s)
    UNION ALL
    (SELECT id, wait_deadline_at FROM executions
     WHERE status = 'waiting' AND wait_deadline_at <= %(now)s AND {_UNLEASED}
     ORDER BY wait_deadline_at LIMIT %(limit)s)
) AS d
GROUP BY id ORDER BY MIN(due_at), id LIMIT %(limit)s
"""
STALE = """
SELECT id FROM executions
WHERE status = 'running'
  AND ((lease_owner IS NOT NULL AND lease_expires_at <= %(now)s)
       OR (lease_owner IS NULL AND updated_at < %(before)s))
ORDER BY updated_at, id LIMIT %(limit)s
"""

# -- events, tokens, tasks, flows --------------------------------------------------------

EVENTS = """
SELECT sequence, type, at, tenant_id, data FROM events
WHERE execution_id = %s AND sequence > %s ORDER BY sequence
"""
SELECT_FOR_APPEND = """
SELECT status, state, lease_owner, lease_expires_at, tenant_id FROM executions
WHERE id = %s FOR UPDATE
"""
UPDATE_STATE = "UPDATE executions SET state = %s WHERE id = %s"
UPDATE_STATE_FENCED = (
    "UPDATE executions SET state = %s, lease_token = lease_token + 1 WHERE id = %s"
)
INSERT_EVENT_ROW = """
INSERT INTO events (execution_id, sequence, type, at, tenant_id, data)
VALUES (%s, %s, %s, %s, %s, %s)
"""
GET_RESUME_TOKEN = """
SELECT token_hash, execution_id, step_id, created_at, expires_at, status, used_at
FROM resume_tokens WHERE token_hash = %s
"""
GET_TASK = "SELECT doc, status FROM tasks WHERE id = %s"
INSERT_FLOW = """
INSERT INTO flows (flow_id, version, definition, created_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (flow_id, version) DO NOTHING
RETURNING 1
"""
GET_FLOW = "SELECT definition, created_at FROM flows WHERE flow_id = %s AND version = %s"
FLOW_VERSIONS = "SELECT version FROM flows WHERE flow_id = %s"
ALL_FLOW_VERSIONS = "SELECT flow_id, version FROM flows"
GET_FLOWS = """
SELECT f.flow_id, f.version, f.definition, f.created_at
FROM flows f JOIN unnest(%s::text[], %s::text[]) AS w(flow_id, version)
  ON f.flow_id = w.flow_id AND f.version = w.version
"""

# -- codecs ------------------------------------------------------------------------------

# Header fields a commit may change; the rest of ``header_dict()`` is fixed at create
# (the protocol says immutable fields are never rewritten, so commits do not send them).
_STATE_KEYS = (
    "status", "current_step_id", "tokens", "wake_at", "wait_reason", "error", "last_error",
    "step_count", "run_number", "updated_at", "started_at", "finished_at", "cancellation",
    "retry_attempts", "deadline_at", "event_seq",
)  # fmt: skip

_dumps = orjson.dumps
_loads = orjson.loads


# Header fields held by columns: the documents do not repeat them (``decode_execution``
# takes them from the columns).
_SPEC_COLUMNS = frozenset({
    "id", "flow_id", "flow_version", "created_at", "tenant_id", "correlation_id",
    "parent_execution_id", "checkpoint",
})  # fmt: skip
_STATE_COLUMNS = frozenset({"status", "updated_at", "started_at", "wake_at", "deadline_at"})
_NOT_SPEC = frozenset(_STATE_KEYS) | _SPEC_COLUMNS  # a set: tested once per header key


def encode_state(header: dict[str, Any]) -> bytes:
    """JSON of the mutable part of ``Execution.header_dict()`` that no column holds:
    ``None`` and empty values left out, times in microseconds (``stores.compact``)."""
    # Only the keys outside the columns are read (``encode_state_of`` passes just those).
    state = {
        key: value
        for key in _STATE_KEYS
        if key not in _STATE_COLUMNS and (value := header[key]) is not None
    }
    if not state.get("retry_attempts", True):
        del state["retry_attempts"]
    return _dumps(compact.times_to_us(state))


def encode_state_of(execution: Execution) -> bytes:
    """``encode_state(execution.header_dict())``, byte for byte, without building the
    whole header: a commit needs only the mutable part, and times go in as ``datetime``
    (no ISO text formatted and parsed back)."""
    error, last_error = execution.error, execution.last_error
    cancellation = execution.cancellation
    return encode_state({
        "current_step_id": execution.current_step_id,
        "tokens": [t.to_dict() for t in execution.tokens],
        "wait_reason": execution.wait_reason,
        "error": error.to_dict() if error else None,
        "last_error": last_error.to_dict() if last_error else None,
        "step_count": execution.step_count,
        "run_number": execution.run_number,
        "finished_at": execution.finished_at,
        "cancellation": cancellation.to_dict() if cancellation else None,
        "retry_attempts": execution.retry_attempts,
        "event_seq": execution.event_seq,
    })  # fmt: skip


def encode_spec(header: dict[str, Any]) -> bytes:
    """JSON of the immutable part of ``Execution.header_dict()`` that no column holds
    (``None`` and empty values left out)."""
    return _dumps({k: v for k, v in header.items() if v and k not in _NOT_SPEC})


def wait_deadline(execution: Execution) -> datetime | None:
    """Earliest wait deadline among the waiting tokens (the indexed column)."""
    deadlines = [
        t.wait_deadline_at
        for t in execution.tokens
        if t.status is TokenStatus.WAITING and t.wait_deadline_at is not None
    ]
    return min(deadlines) if deadlines else None


def decode_execution(row: Sequence[Any]) -> Execution:
    """Build an ``Execution`` from a ``LOAD_*`` row."""
    status, started_at, spec, state, checkpoint, ckeys, cvals, hist = row[:8]
    data = _loads(spec)
    data.update(compact.restore_times(_loads(state)))
    (data["id"], data["flow_id"], data["flow_version"], data["tenant_id"],
     data["correlation_id"], data["parent_execution_id"], data["created_at"],
     data["updated_at"], data["wake_at"], data["deadline_at"]) = row[8:18]  # fmt: skip
    # The columns are authoritative: claim/acquire change them without rewriting `state`.
    data["status"] = status
    data["started_at"] = started_at
    data["checkpoint"] = _loads(checkpoint) if checkpoint is not None else None
    context = {key: _loads(value) for key, value in zip(ckeys, cvals, strict=True)}
    history = [compact.step_from_blob(r) for r in hist] if hist else []
    return Execution.from_header(data, context=context, history=history)


_TASK_TIMES = ("created_at", "due_at", "completed_at")


def encode_task(task: Task) -> bytes:
    """JSON document of a task (times as ISO strings, exact round trip)."""
    doc = {
        "id": task.id, "execution_id": task.execution_id, "step_id": task.step_id,
        "tenant_id": task.tenant_id, "title": task.title, "description": task.description,
        "assignee": task.assignee, "role": task.role, "priority": task.priority,
        "status": task.status, "form": task.form, "output": task.output,
        "completed_by": task.completed_by, "token_id": task.token_id, "visit": task.visit,
        "metadata": task.metadata,
    }  # fmt: skip
    for name in _TASK_TIMES:
        value = getattr(task, name)
        doc[name] = value.isoformat() if value is not None else None
    return _dumps(doc)


def decode_task(doc: bytes, status: str) -> Task:
    """Inverse of ``encode_task``; ``status`` comes from the authoritative column."""
    data = _loads(doc)
    for name in _TASK_TIMES:
        if data.get(name) is not None:
            data[name] = datetime.fromisoformat(data[name])
    data["status"] = status
    return Task(**data)


def token_from_row(row: tuple[Any, ...]) -> ResumeTokenRecord:
    """Build a ``ResumeTokenRecord`` from a ``GET_RESUME_TOKEN`` row."""
    token_hash, execution_id, step_id, created_at, expires_at, status, used_at = row
    return ResumeTokenRecord(
        token_hash=token_hash, execution_id=execution_id, step_id=step_id,
        created_at=created_at, expires_at=expires_at, status=status, used_at=used_at,
    )  # fmt: skip


def count_by_status(tenant_id: str | None, flow_id: str | None) -> tuple[str, dict[str, Any]]:
    """``SELECT status, count(*)`` with only the filters given (so each can use its index)."""
    where = []
    params: dict[str, Any] = {}
    if tenant_id is not None:
        where.append("tenant_id = %(tenant_id)s")
        params["tenant_id"] = tenant_id
    if flow_id is not None:
        where.append("flow_id = %(flow_id)s")
        params["flow_id"] = flow_id
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    return f"SELECT status, count(*) FROM executions {clause}GROUP BY status", params

-- flowmonkey PostgreSQL schema, version 1.
--
-- Runs inside the migration transaction with search_path set to the target schema, so
-- names are unqualified. JSON documents are stored as BYTEA holding orjson output: the
-- store writes and reads them without any server-side parsing (JSONB would re-parse each
-- write and reject "\u0000" in user strings). Inspect one with
--   convert_from(state, 'UTF8')::jsonb
-- Timestamps are TIMESTAMPTZ; every column the store queries on is a real column.

-- One row per execution. The header is split in two documents: `spec` holds the fields
-- fixed at create (flow, tenant, metadata, idempotency, parent, timeout durations) and is
-- written once; `state` holds the fields a step changes and is rewritten by each commit.
-- `status` and `started_at` are columns and authoritative (claim/acquire change them
-- without rewriting `state`).
CREATE TABLE executions (
    id                  TEXT PRIMARY KEY,
    flow_id             TEXT NOT NULL,
    flow_version        TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN (
                            'pending', 'running', 'waiting', 'cancelling',
                            'cancelled', 'completed', 'failed')),
    tenant_id           TEXT,
    correlation_id      TEXT,
    parent_execution_id TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    wake_at             TIMESTAMPTZ,
    deadline_at         TIMESTAMPTZ,
    -- earliest wait_deadline_at of the waiting tokens (timeouts of waits)
    wait_deadline_at    TIMESTAMPTZ,
    lease_owner         TEXT,
    -- fencing token: bumped on every grant, checked by every commit
    lease_token         BIGINT NOT NULL DEFAULT 0,
    lease_expires_at    TIMESTAMPTZ,
    spec                BYTEA NOT NULL,
    state               BYTEA NOT NULL,
    checkpoint          BYTEA
) WITH (fillfactor = 80);
-- fillfactor 80 leaves room on each page so the per-step UPDATE can be a HOT update
-- (no index writes) whenever no indexed column changed, which is most steps.

-- Claiming: one narrow partial index per kind of runnable row.
CREATE INDEX executions_pending ON executions (created_at, id) WHERE status = 'pending';
CREATE INDEX executions_wake ON executions (wake_at, id)
    WHERE status = 'waiting' AND wake_at IS NOT NULL;
CREATE INDEX executions_running_lease ON executions (lease_expires_at, id)
    WHERE status = 'running';
-- Scheduler: deadlines of live executions and wait timeouts.
CREATE INDEX executions_deadline ON executions (deadline_at)
    WHERE deadline_at IS NOT NULL
      AND status NOT IN ('completed', 'failed', 'cancelled');
CREATE INDEX executions_wait_deadline ON executions (wait_deadline_at)
    WHERE status = 'waiting' AND wait_deadline_at IS NOT NULL;
-- Listing (newest first) and its filters.
CREATE INDEX executions_listing ON executions (created_at DESC, id DESC);
CREATE INDEX executions_flow ON executions (flow_id, created_at DESC, id DESC);
CREATE INDEX executions_tenant ON executions (tenant_id, created_at DESC, id DESC)
    WHERE tenant_id IS NOT NULL;
CREATE INDEX executions_correlation ON executions (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX executions_parent ON executions (parent_execution_id)
    WHERE parent_execution_id IS NOT NULL;

-- Context, one row per top-level key: a commit writes only the keys a step changed.
-- `pos` keeps keys in insertion order (an upsert keeps the original position).
CREATE TABLE execution_context (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    pos          BIGINT GENERATED ALWAYS AS IDENTITY,
    value        BYTEA NOT NULL,
    PRIMARY KEY (execution_id, key)
);

-- Step history (one row per handler attempt), in insertion order.
CREATE TABLE step_records (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT GENERATED ALWAYS AS IDENTITY,
    record       BYTEA NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

-- Events, append-only per execution with the engine-assigned sequence.
CREATE TABLE events (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    sequence     BIGINT NOT NULL,
    type         TEXT NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    tenant_id    TEXT,
    data         BYTEA NOT NULL,
    PRIMARY KEY (execution_id, sequence)
);

-- Idempotency: the primary key makes "one execution per (tenant, flow, key)" atomic
-- (INSERT ... ON CONFLICT), and an expired row is replaced in the same statement.
-- tenant_id is '' for executions without a tenant (key columns cannot be NULL).
CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL,
    flow_id      TEXT NOT NULL,
    key          TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    expires_at   TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, flow_id, key)
);

-- Resume tokens (only their SHA-256 is stored).
CREATE TABLE resume_tokens (
    token_hash   TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    step_id      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    status       TEXT NOT NULL CHECK (status IN ('active', 'used', 'revoked')),
    used_at      TIMESTAMPTZ
);
CREATE INDEX resume_tokens_active ON resume_tokens (execution_id) WHERE status = 'active';

-- User tasks: `doc` is the whole task; the other columns are copies for queries, except
-- `status`, which is authoritative (cancelling pending tasks updates only the column).
CREATE TABLE tasks (
    id           TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    step_id      TEXT NOT NULL,
    tenant_id    TEXT,
    status       TEXT NOT NULL,
    assignee     TEXT,
    role         TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    doc          BYTEA NOT NULL
);
CREATE INDEX tasks_execution ON tasks (execution_id, status);
CREATE INDEX tasks_status ON tasks (status, created_at, id);
CREATE INDEX tasks_assignee ON tasks (assignee, created_at, id) WHERE assignee IS NOT NULL;
CREATE INDEX tasks_role ON tasks (role, created_at, id) WHERE role IS NOT NULL;

-- Flow definitions: versions are immutable.
CREATE TABLE flows (
    flow_id    TEXT NOT NULL,
    version    TEXT NOT NULL,
    definition BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (flow_id, version)
);

-- Raise `errcode` with `message` unless `ok`. Fenced writes call it in the same pipelined
-- batch as the rest of a commit, so a lost lease aborts the transaction server-side and
-- the whole commit still costs one round trip (no read-check-then-write from Python).
CREATE FUNCTION fm_check(ok BOOLEAN, errcode TEXT, message TEXT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION USING ERRCODE = errcode, MESSAGE = message;
    END IF;
END
$$;

-- flowmonkey SQLite schema, version 1.
-- Times are INTEGER microseconds since the Unix epoch (UTC): exact, and compared as numbers.
-- JSON columns hold orjson bytes as BLOBs (written and read as-is, never parsed by SQLite).

CREATE TABLE executions (
    id                  TEXT PRIMARY KEY,
    flow_id             TEXT NOT NULL,
    flow_version        TEXT NOT NULL,
    status              TEXT NOT NULL,
    tenant_id           TEXT,
    correlation_id      TEXT,
    parent_execution_id TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    wake_at             INTEGER,
    deadline_at         INTEGER,
    -- earliest wait_deadline_at over the execution's waiting tokens
    wait_deadline_at    INTEGER,
    lease_owner         TEXT,
    lease_token         INTEGER NOT NULL DEFAULT 0,
    lease_expires_at    INTEGER,
    -- header fields fixed at create (flow, tenant, metadata, idempotency, parent, timeouts)
    info                BLOB NOT NULL,
    -- header fields every commit rewrites (status, tokens, errors, counters, ...)
    state               BLOB NOT NULL,
    -- kept apart so save_checkpoint is one small UPDATE
    checkpoint          BLOB
);

-- claim: pending/running by lease expiry, waiting by wake_at; due timers
CREATE INDEX executions_status_wake ON executions (status, wake_at);
CREATE INDEX executions_status_lease ON executions (status, lease_expires_at);
CREATE INDEX executions_deadline ON executions (deadline_at) WHERE deadline_at IS NOT NULL;
CREATE INDEX executions_wait_deadline ON executions (wait_deadline_at)
    WHERE wait_deadline_at IS NOT NULL;
-- listing, newest first, and its common filters
CREATE INDEX executions_created ON executions (created_at, id);
CREATE INDEX executions_tenant_created ON executions (tenant_id, created_at, id);
CREATE INDEX executions_flow_created ON executions (flow_id, created_at, id);
CREATE INDEX executions_correlation ON executions (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX executions_parent ON executions (parent_execution_id, created_at, id)
    WHERE parent_execution_id IS NOT NULL;

-- One row per top-level context key, so a step writes only the keys it changed.
CREATE TABLE execution_context (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    value        BLOB NOT NULL,
    PRIMARY KEY (execution_id, key)
);

-- The journal of an execution: its events (sequence 1, 2, ...) and its step records
-- (history) as rows with negative sequences (-1, -2, ...) and type '$step'. One table,
-- so a step commit appends to one b-tree page instead of two: every page a commit
-- dirties is written and fsynced to the WAL, about a sixth of a step's cost each.
-- WITHOUT ROWID: one b-tree instead of table + primary-key index, for the same reason.
-- Rows here are small; context values, which may be large, stay in a rowid table.
CREATE TABLE events (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    sequence     INTEGER NOT NULL,
    type         TEXT NOT NULL,
    timestamp    INTEGER NOT NULL,
    tenant_id    TEXT,
    data         BLOB NOT NULL,
    PRIMARY KEY (execution_id, sequence)
) WITHOUT ROWID;

-- tenant_id is '' for no tenant, so the primary key also covers the NULL tenant.
CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL,
    flow_id      TEXT NOT NULL,
    key          TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    expires_at   INTEGER,
    PRIMARY KEY (tenant_id, flow_id, key)
);

CREATE TABLE resume_tokens (
    token_hash   TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    step_id      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    status       TEXT NOT NULL,
    used_at      INTEGER
);
CREATE INDEX resume_tokens_execution ON resume_tokens (execution_id, status);

CREATE TABLE tasks (
    id           TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    step_id      TEXT NOT NULL,
    tenant_id    TEXT,
    title        TEXT NOT NULL,
    description  TEXT,
    assignee     TEXT,
    role         TEXT,
    priority     TEXT NOT NULL,
    status       TEXT NOT NULL,
    form         BLOB,
    output       BLOB,
    created_at   INTEGER NOT NULL,
    due_at       INTEGER,
    completed_at INTEGER,
    completed_by TEXT,
    token_id     TEXT,
    visit        INTEGER NOT NULL,
    metadata     BLOB NOT NULL
);
CREATE INDEX tasks_execution ON tasks (execution_id, status);
CREATE INDEX tasks_status_created ON tasks (status, created_at, id);
CREATE INDEX tasks_assignee ON tasks (assignee, status) WHERE assignee IS NOT NULL;
CREATE INDEX tasks_role ON tasks (role, status) WHERE role IS NOT NULL;

CREATE TABLE flows (
    flow_id    TEXT NOT NULL,
    version    TEXT NOT NULL,
    definition BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (flow_id, version)
);

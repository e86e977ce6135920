-- Triggers of the service: cron schedules (leased by whoever fires them) and their runs,
-- webhook triggers and forms (JSON documents by kind), and form submissions.
CREATE TABLE schedules (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT,
    spec              TEXT NOT NULL,
    paused            INTEGER NOT NULL DEFAULT 0,
    next_fire_at      TIMESTAMPTZ,
    last_execution_id TEXT,
    buffered_for      TIMESTAMPTZ,
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;

-- One row per handled scheduled time: the primary key makes recording it twice impossible.
CREATE TABLE schedule_runs (
    schedule_id   TEXT NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL,
    fired_at      TIMESTAMPTZ NOT NULL,
    outcome       TEXT NOT NULL,
    execution_id  TEXT,
    reason        TEXT,
    PRIMARY KEY (schedule_id, scheduled_for)
);

CREATE TABLE trigger_documents (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    tenant_id  TEXT,
    spec       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE form_submissions (
    id           TEXT PRIMARY KEY,
    form_id      TEXT NOT NULL,
    dedupe_key   TEXT,
    data         TEXT NOT NULL,
    execution_id TEXT,
    client       TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (form_id, dedupe_key)
);
CREATE INDEX form_submissions_by_form ON form_submissions (form_id, created_at);

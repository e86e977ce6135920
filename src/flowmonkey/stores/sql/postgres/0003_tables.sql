-- Data tables (docs/tables.md): a table's definition never changes once created.
CREATE TABLE data_tables (
    name       TEXT PRIMARY KEY,
    schema     JSONB NOT NULL,
    indexed    TEXT[] NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Rows of every table. `seq` is the insertion order (cursors and "newest first");
-- `data` is JSONB so fields can be filtered and indexed on the server. Each indexed field
-- gets a partial expression index, ((data->>'<field>')::<type>, seq) WHERE table_name =
-- '<table>', created with the table that declares it.
-- A row is written in every piped step's commit, so it carries no more than it needs:
-- no foreign key to data_tables (the engine checks the table exists before the commit,
-- and tables are never dropped) and no unique index on `id` (128 random bits).
CREATE TABLE table_rows (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL,
    table_name   TEXT NOT NULL,
    tenant_id    TEXT,
    execution_id TEXT,
    step_id      TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    data         JSONB NOT NULL
);
CREATE INDEX table_rows_table ON table_rows (table_name, seq);
-- Partial: rows without a tenant cost no index write; tenant_id = $1 implies the predicate.
CREATE INDEX table_rows_tenant ON table_rows (table_name, tenant_id, seq)
    WHERE tenant_id IS NOT NULL;

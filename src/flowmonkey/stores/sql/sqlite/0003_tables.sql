-- Data tables (docs/tables.md): a table's definition never changes once created.
CREATE TABLE data_tables (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,  -- JSON {"schema": ..., "indexed": [...]}
    created_at INTEGER NOT NULL
);

-- Rows of every table. `seq` is the insertion order (cursors and "newest first");
-- `data` is the row as JSON text, read with SQLite's JSON functions. Each indexed field
-- gets an expression index (table_name, json_extract(data, '$.<field>'), seq), created
-- with the table that declares it.
CREATE TABLE table_rows (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    table_name   TEXT NOT NULL REFERENCES data_tables (name),
    tenant_id    TEXT,
    execution_id TEXT,
    step_id      TEXT,
    created_at   INTEGER NOT NULL,
    data         TEXT NOT NULL
);
CREATE INDEX table_rows_table ON table_rows (table_name, seq);
CREATE INDEX table_rows_tenant ON table_rows (table_name, tenant_id, seq);

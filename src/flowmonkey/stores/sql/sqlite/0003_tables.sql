-- Data tables (docs/tables.md): a table's definition never changes once created.
CREATE TABLE data_tables (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,  -- JSON {"schema": ..., "indexed": [...]}
    created_at INTEGER NOT NULL
);

-- Rows of every table, clustered by (table_name, seq): `seq` is the insertion order within
-- the table (cursors, "newest first"), assigned as MAX(seq) + 1 by the insert itself (SQLite
-- serialises writers). WITHOUT ROWID and no AUTOINCREMENT on purpose: a pipe row is written
-- in every piped step's commit, and each extra B-tree (a rowid table beside this order, the
-- sqlite_sequence row, a unique index on `id`) is one more page per commit to write and
-- fsync. No foreign key to data_tables either: the engine checks the table exists before
-- the commit (and insert_rows before inserting), and tables are never dropped. `data` is the row as JSON text, read with SQLite's JSON functions; each indexed field
-- gets a partial expression index (json_extract(data, '$.<field>'), seq) WHERE table_name =
-- '<table>', created with the table that declares it.
CREATE TABLE table_rows (
    table_name   TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL,
    tenant_id    TEXT,
    execution_id TEXT,
    step_id      TEXT,
    created_at   INTEGER NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (table_name, seq)
) WITHOUT ROWID;
-- Partial: rows without a tenant (the usual embedded case) cost no index write, and a
-- query with tenant_id = ? implies tenant_id IS NOT NULL, so it still uses the index.
CREATE INDEX table_rows_tenant ON table_rows (table_name, tenant_id, seq)
    WHERE tenant_id IS NOT NULL;

-- Each data table's rows live in a SQLite table of their own, rows_<table> (created with the
-- table, see table_sql.sqlite_table_statements): a rowid table, so a piped row is appended to
-- its last leaf page, and field indexes written in batches of 128 rows, so a piped row's
-- commit writes no index page. SqliteStore copies the rows of existing tables there just
-- before this migration (their names cannot be written in SQL alone); the shared table,
-- its tenant index and its per-table field indexes go.
DROP TABLE table_rows;

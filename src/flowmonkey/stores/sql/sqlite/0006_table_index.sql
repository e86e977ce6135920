-- Field indexes of data tables are written in batches (docs/tables.md, "How the stores
-- answer"). A row is inserted with indexed = 0, so it is outside every field index (each is
-- partial: ... WHERE table_name = '<table>' AND indexed = 1) and its commit writes no index
-- page. The insert of every 128th row of a table (seq % 128 = 0; seq is contiguous per
-- table) flips the flag of the 128 rows up to it, in the same transaction, so their index
-- entries are written together: a few index pages per 128 rows instead of one per row.
-- Hence, for every table, the rows with indexed = 0 are exactly those above
-- MAX(seq) / 128 * 128 (at most 127), and a query on an indexed field reads the index for
-- the rows with indexed = 1 plus that bounded tail (table_sql.row_query).
-- Rows that exist before this migration keep indexed = 1: they are in the indexes already.
-- The field indexes themselves are recreated with the new WHERE by the store right after
-- this migration (their names depend on the table, so SQL alone cannot).
ALTER TABLE table_rows ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1;

CREATE TRIGGER table_rows_index_batch AFTER INSERT ON table_rows
WHEN NEW.seq % 128 = 0
BEGIN
    UPDATE table_rows SET indexed = 1
    WHERE table_name = NEW.table_name AND seq > NEW.seq - 128 AND seq <= NEW.seq
      AND indexed = 0;
END;

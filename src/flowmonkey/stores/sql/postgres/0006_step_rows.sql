-- flowmonkey PostgreSQL schema, version 6: the rows a step writes carry no foreign key.
--
-- Every step inserts a history row and an events row (and upserts a context key). With
-- `REFERENCES executions` each insert ran a referential check at the end of the
-- statement: a `SELECT ... FOR KEY SHARE` of the execution row the same statement had
-- just updated, which also WAL-logs a row lock. Measured on the step statement: about
-- 40 us of backend CPU per step, a quarter of the statement's server time.
--
-- Nothing relied on the constraints: every write of these rows is fenced by, or in the
-- same statement as, the execution row (the commit's CTEs run only when the fenced
-- UPDATE matched; a create inserts them beside the new row; appended events lock the
-- row FOR UPDATE first), and purge deletes them explicitly before the execution (their
-- ON DELETE CASCADE was never used). Resume tokens and tasks keep theirs: they are not
-- on the per-step path.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_execution_id_fkey;
ALTER TABLE step_records DROP CONSTRAINT IF EXISTS step_records_execution_id_fkey;
ALTER TABLE execution_context DROP CONSTRAINT IF EXISTS execution_context_execution_id_fkey;

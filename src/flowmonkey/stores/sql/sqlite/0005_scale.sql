-- flowmonkey SQLite schema, version 5: scale.
--
-- Every periodic query reads only due work, and every listing page reads only its rows:
--
-- * One narrow partial index per kind of due time (as on PostgreSQL). A parked execution
--   is in exactly the indexes its due times need, and a query that asks "what is due at
--   :now" is a range scan that stops at the first row not yet due.
-- * Listings are served status by status: each listing index is (filter, status,
--   created_at, id), so a page of one status is one index range read backwards, and a
--   page over several statuses merges one such range per status (no sort of the
--   matching rows, whatever their number).
-- * Purge reads terminal executions through the same listing indexes (terminal status,
--   created_at before the cutoff).

DROP INDEX executions_status_wake;
DROP INDEX executions_status_lease;
DROP INDEX executions_deadline;
DROP INDEX executions_wait_deadline;
DROP INDEX executions_created;
DROP INDEX executions_tenant_created;
DROP INDEX executions_flow_created;
DROP INDEX executions_correlation;
DROP INDEX executions_parent;

-- Claiming and the scheduler.
CREATE INDEX executions_pending ON executions (created_at, id) WHERE status = 'pending';
CREATE INDEX executions_wake ON executions (wake_at, id)
    WHERE status = 'waiting' AND wake_at IS NOT NULL;
CREATE INDEX executions_running ON executions (lease_expires_at, id) WHERE status = 'running';
CREATE INDEX executions_deadline ON executions (deadline_at, id)
    WHERE deadline_at IS NOT NULL AND status NOT IN ('completed', 'failed', 'cancelled');
CREATE INDEX executions_wait_deadline ON executions (wait_deadline_at, id)
    WHERE status = 'waiting' AND wait_deadline_at IS NOT NULL;

-- Listing (and purge), one status at a time.
CREATE INDEX executions_status ON executions (status, created_at, id);
CREATE INDEX executions_flow ON executions (flow_id, status, created_at, id);
CREATE INDEX executions_tenant ON executions (tenant_id, status, created_at, id)
    WHERE tenant_id IS NOT NULL;
-- The HTTP API scopes every listing to a tenant, and filters by flow within it.
CREATE INDEX executions_tenant_flow ON executions (tenant_id, flow_id, status, created_at, id)
    WHERE tenant_id IS NOT NULL;
CREATE INDEX executions_correlation ON executions (correlation_id, status, created_at, id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX executions_parent ON executions (parent_execution_id, status, created_at, id)
    WHERE parent_execution_id IS NOT NULL;

-- Resume tokens: the index served cascade deletes already; keep it.

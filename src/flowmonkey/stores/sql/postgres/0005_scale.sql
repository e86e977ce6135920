-- flowmonkey PostgreSQL schema, version 5: scale.
--
-- Listings are served status by status: each listing index is (filter, status,
-- created_at DESC, id DESC), so a page of one status is one index range, and a page over
-- several statuses merges one such range per status (LATERAL, LIMIT each), never a sort
-- of every matching row. Purge reads terminal executions through the same indexes.

DROP INDEX executions_listing;
DROP INDEX executions_flow;
DROP INDEX executions_tenant;
DROP INDEX executions_correlation;
DROP INDEX executions_parent;

CREATE INDEX executions_status ON executions (status, created_at DESC, id DESC);
CREATE INDEX executions_flow ON executions (flow_id, status, created_at DESC, id DESC);
CREATE INDEX executions_tenant ON executions (tenant_id, status, created_at DESC, id DESC)
    WHERE tenant_id IS NOT NULL;
-- The HTTP API scopes every listing to a tenant, and filters by flow within it.
CREATE INDEX executions_tenant_flow
    ON executions (tenant_id, flow_id, status, created_at DESC, id DESC)
    WHERE tenant_id IS NOT NULL;
CREATE INDEX executions_correlation
    ON executions (correlation_id, status, created_at DESC, id DESC)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX executions_parent
    ON executions (parent_execution_id, status, created_at DESC, id DESC)
    WHERE parent_execution_id IS NOT NULL;

-- Deleting an execution (purge) deletes its resume tokens of every status: that needs an
-- index on execution_id alone (the old one covered active tokens only).
DROP INDEX resume_tokens_active;
CREATE INDEX resume_tokens_execution ON resume_tokens (execution_id);

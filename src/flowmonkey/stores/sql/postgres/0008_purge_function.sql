-- flowmonkey PostgreSQL schema, version 8: a purge batch runs on the server.
--
-- A purge batch used to send its candidates to the client, which decided and sent their
-- ids back: about 48 us of client CPU per purged execution, on the event loop that the
-- worker's live runs share (a purge at 5,000 executions/s took a quarter of a core from
-- them). Almost every candidate is "plain": no parent still stored, no child, and no
-- idempotency key in its header. Nothing about a plain one needs deciding (it is a tree
-- of one, finished, holding no key), so this function finds and deletes the plain
-- candidates of one status in one call, and hands back only the others (with a key, or
-- a parent of other executions) for the client's rules (`stores.purge.decide`), which
-- every store shares.
--
-- A call examines at most p_limit candidates of status p_status created before p_cutoff
-- (after (p_after_at, p_after_id) when given), oldest first, and returns how many it
-- examined and the last one (the pass's cursor), how many it purged and the rows
-- deleted, and the ids (with a has-children flag) left to the client.
CREATE FUNCTION flowmonkey_purge_batch(
    p_status TEXT, p_cutoff TIMESTAMPTZ, p_limit INTEGER, p_flow_id TEXT,
    p_after_at TIMESTAMPTZ, p_after_id TEXT, p_excluded TEXT[], p_dry_run BOOLEAN,
    OUT examined INTEGER, OUT last_at TIMESTAMPTZ, OUT last_id TEXT,
    OUT purged INTEGER, OUT deleted BIGINT, OUT others TEXT[], OUT others_parent_of BOOLEAN[]
) LANGUAGE plpgsql AS $fn$
DECLARE
    plain TEXT[] := '{}';
    r RECORD;
BEGIN
    examined := 0; purged := 0; deleted := 0; others := '{}'; others_parent_of := '{}';
    -- The status is a literal, for the planner's estimates (as the listings' queries);
    -- the optional filters are left out when unused, so the plan is the index's walk.
    -- The parent and child checks run on the limited candidates (the outer query): as
    -- EXISTS beside the scan, the planner, estimating every old execution of the
    -- status, hashed ALL executions' parent ids once per batch (a full scan of the
    -- table per batch); on at most p_limit rows each check is one index probe.
    FOR r IN EXECUTE format(
        'SELECT c.id, c.created_at,'
        ' c.updated_at < $1 AND NOT (c.flow_id = ANY ($5))'
        ' AND NOT (c.parent_execution_id IS NOT NULL'
        '          AND EXISTS (SELECT 1 FROM executions p WHERE p.id = c.parent_execution_id))'
        ' AS eligible, c.has_key,'
        ' EXISTS (SELECT 1 FROM executions k WHERE k.parent_execution_id = c.id) AS parent_of'
        ' FROM (SELECT e.id, e.created_at, e.updated_at, e.flow_id, e.parent_execution_id,'
        '       position(''"idempotency_key"''::bytea IN e.spec) > 0 AS has_key'
        '       FROM executions e WHERE e.status = %L AND e.created_at < $1%s%s'
        '       ORDER BY e.created_at, e.id LIMIT $2) AS c'
        ' ORDER BY c.created_at, c.id',
        p_status,
        CASE WHEN p_flow_id IS NULL THEN '' ELSE ' AND e.flow_id = $3' END,
        CASE WHEN p_after_at IS NULL THEN '' ELSE ' AND (e.created_at, e.id) > ($4, $6)' END)
        USING p_cutoff, p_limit, p_flow_id, p_after_at, p_excluded, p_after_id
    LOOP
        examined := examined + 1;
        last_at := r.created_at;
        last_id := r.id;
        CONTINUE WHEN NOT r.eligible;  -- still being updated, excluded, or a kept child
        IF r.has_key OR r.parent_of THEN
            others := others || r.id;
            others_parent_of := others_parent_of || r.parent_of;
        ELSE
            plain := plain || r.id;
        END IF;
    END LOOP;
    IF p_dry_run OR cardinality(plain) = 0 THEN
        purged := cardinality(plain);
        RETURN;
    END IF;
    -- A lost purge commit (a crash before the WAL reached the disk) is redone by the next
    -- pass: the batch need not wait for the flush, which live commits pay for anyway.
    PERFORM set_config('synchronous_commit', 'off', true);
    -- Lock first: events, history and context rows carry no foreign key (schema 6), so
    -- an event appended meanwhile must wait for the lock and then find the execution
    -- gone. The delete is the NEXT statement: its new snapshot sees what such a writer
    -- committed before the lock was granted.
    SELECT COALESCE(array_agg(l.id), '{}') INTO plain
    FROM (SELECT id FROM executions WHERE id = ANY (plain) FOR UPDATE) AS l;
    -- What they own, then the executions, in one statement, counted (resume tokens and
    -- tasks keep a cascading foreign key whose deletes then find nothing left).
    WITH ev AS (DELETE FROM events WHERE execution_id = ANY (plain) RETURNING 1),
    ctx AS (DELETE FROM execution_context WHERE execution_id = ANY (plain) RETURNING 1),
    sr AS (DELETE FROM step_records WHERE execution_id = ANY (plain) RETURNING 1),
    rt AS (DELETE FROM resume_tokens WHERE execution_id = ANY (plain) RETURNING 1),
    tk AS (DELETE FROM tasks WHERE execution_id = ANY (plain) RETURNING 1),
    ex AS (DELETE FROM executions WHERE id = ANY (plain) RETURNING 1)
    SELECT (SELECT count(*) FROM ex),
        (SELECT count(*) FROM ev) + (SELECT count(*) FROM ctx) + (SELECT count(*) FROM sr)
        + (SELECT count(*) FROM rt) + (SELECT count(*) FROM tk) + (SELECT count(*) FROM ex)
    INTO purged, deleted;
END
$fn$;

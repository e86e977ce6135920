"""``purge`` of the PostgreSQL store: one batch of old finished executions per call.

The candidates, their trees and the deletes run in ONE transaction; the rules (what is
kept) are ``stores.purge``'s, shared by every store.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from flowmonkey.stores import purge as purge_rules
from flowmonkey.stores.base import PurgeBatch, PurgeQuery

__all__ = ["purge_batch"]

# -- statements (used only here) ---------------------------------------------------------

# Candidates of one terminal status, oldest first, from the listing index (the status is a
# literal for the planner's estimates, as in postgres_queries.LIST_ARM). ``kept``: a
# parent still exists.
PURGE_CANDIDATES = """
SELECT e.id, e.created_at, e.updated_at, e.flow_id, e.tenant_id,
    -- the header only when it may hold an idempotency key (few do): less to send and parse
    CASE WHEN position('"idempotency_key"'::bytea IN e.spec) > 0 THEN e.spec END,
    (e.parent_execution_id IS NOT NULL
     AND EXISTS (SELECT 1 FROM executions p WHERE p.id = e.parent_execution_id)) AS kept,
    EXISTS (SELECT 1 FROM executions c WHERE c.parent_execution_id = e.id) AS parent_of
FROM executions e
WHERE e.status = '{status}' AND e.created_at < %(cutoff)s{where}
ORDER BY e.created_at, e.id LIMIT %(limit)s
"""
PURGE_FLOW = " AND e.flow_id = %(flow_id)s"
PURGE_AFTER = " AND (e.created_at, e.id) > (%(after_at)s, %(after_id)s)"
# Every execution below the roots, through the parent index.
PURGE_TREES = """
WITH RECURSIVE tree (root, id) AS (
    SELECT r, r FROM unnest(%(roots)s::text[]) AS r
    UNION ALL
    SELECT t.root, c.id FROM tree t JOIN executions c ON c.parent_execution_id = t.id
)
SELECT t.root, t.id, e.status, e.tenant_id, e.flow_id, e.spec
FROM tree t JOIN executions e ON e.id = t.id
"""
# The batch's ids travel as ONE json text parameter: psycopg dumps a text[] element by
# element (a regular expression each, to quote them), which cost more client CPU than
# the rest of the batch's statements.
_PURGE_IDS = "ARRAY(SELECT jsonb_array_elements_text(%(ids)s::jsonb))"
# The executions are locked first: their events, history and context rows carry no
# foreign key (schema 6), so an event appended to one of them while it is being purged
# must wait for the purge (and then finds it gone) instead of leaving an orphan row. The
# deletes run in the NEXT statement, whose snapshot sees whatever such a writer
# committed before the lock was granted.
PURGE_LOCK = f"""
SELECT count(*) FROM (SELECT 1 FROM executions WHERE id = ANY({_PURGE_IDS}) FOR UPDATE) AS l
"""
# What the executions own, and the executions, counted. Resume tokens and tasks keep a
# cascading foreign key, whose deletes run at the end of the statement and then find
# nothing left: the counts are real.
PURGE_DELETE = f"""
WITH ev AS (DELETE FROM events WHERE execution_id = ANY({_PURGE_IDS}) RETURNING 1),
ctx AS (
    DELETE FROM execution_context WHERE execution_id = ANY({_PURGE_IDS}) RETURNING 1),
sr AS (DELETE FROM step_records WHERE execution_id = ANY({_PURGE_IDS}) RETURNING 1),
rt AS (DELETE FROM resume_tokens WHERE execution_id = ANY({_PURGE_IDS}) RETURNING 1),
tk AS (DELETE FROM tasks WHERE execution_id = ANY({_PURGE_IDS}) RETURNING 1),
ik AS (
    DELETE FROM idempotency_keys k
    USING unnest(%(k_tenant)s::text[], %(k_flow)s::text[], %(k_key)s::text[],
                 %(k_exec)s::text[]) AS d (tenant_id, flow_id, key, execution_id)
    WHERE k.tenant_id = d.tenant_id AND k.flow_id = d.flow_id AND k.key = d.key
      AND k.execution_id = d.execution_id
    RETURNING 1
),
ex AS (DELETE FROM executions WHERE id = ANY({_PURGE_IDS}) RETURNING 1)
SELECT (SELECT count(*) FROM ev) + (SELECT count(*) FROM ctx) + (SELECT count(*) FROM sr)
     + (SELECT count(*) FROM rt) + (SELECT count(*) FROM tk) + (SELECT count(*) FROM ik)
     + (SELECT count(*) FROM ex)
"""


def _node(
    ident: str, status: str, tenant_id: str | None, flow_id: str, spec: bytes | None
) -> purge_rules.Node:
    if spec is None or b'"idempotency_key"' not in spec:
        return purge_rules.Node(ident, status)  # no key: nothing in the header matters
    header = orjson.loads(spec)
    header["tenant_id"], header["flow_id"] = tenant_id, flow_id
    key, expires = purge_rules.idempotency_of(header)
    return purge_rules.Node(ident, status, key, expires)


async def purge_batch(conn: Any, query: PurgeQuery) -> PurgeBatch:
    """Run one batch on ``conn`` inside an open transaction (see ``Store.purge``)."""
    wanted = purge_rules.statuses(query)
    position, at, ident = purge_rules.decode_cursor(query.cursor)
    excluded = set(query.exclude_flow_ids)
    budget = query.limit
    roots: dict[str, purge_rules.Node] = {}  # candidates with children: walk their trees
    trees: dict[str, list[purge_rules.Node]] = defaultdict(list)
    while position < len(wanted) and budget > 0:
        params: dict[str, Any] = {"cutoff": query.older_than, "limit": budget}
        where = ""
        if query.flow_id is not None:
            where += PURGE_FLOW
            params["flow_id"] = query.flow_id
        if at is not None:
            where += PURGE_AFTER
            params["after_at"], params["after_id"] = at, ident
        sql = PURGE_CANDIDATES.format(status=wanted[position].value, where=where)
        found = await (await conn.execute(sql, params)).fetchall()
        budget -= len(found)
        for row_id, _, updated, flow_id, tenant_id, spec, kept, parent_of in found:
            if updated < query.older_than and flow_id not in excluded and not kept:
                node = _node(row_id, str(wanted[position]), tenant_id, flow_id, spec)
                if parent_of:
                    roots[row_id] = node
                else:
                    trees[row_id].append(node)  # no children: a tree of one
        if budget > 0:  # this status is done
            position, at, ident = position + 1, None, None
        else:
            at, ident = found[-1][1], found[-1][0]
    next_cursor = purge_rules.encode_cursor(position, at, ident) if position < len(wanted) else None
    if roots:
        cur = await conn.execute(PURGE_TREES, {"roots": list(roots)})
        for root, node_id, status, tenant_id, flow_id, spec in await cur.fetchall():
            node = (
                roots[root] if node_id == root else _node(node_id, status, tenant_id, flow_id, spec)
            )
            trees[root].append(node)
    verdict = purge_rules.decide(trees.values(), query.now)
    if query.dry_run or not verdict.ids:
        return PurgeBatch(executions=len(verdict.ids), rows=0, next_cursor=next_cursor)
    ids = orjson.dumps(verdict.ids).decode()
    await conn.execute(PURGE_LOCK, {"ids": ids})
    keys = list(zip(*verdict.keys, strict=True)) if verdict.keys else [(), (), (), ()]
    deleted = await conn.execute(
        PURGE_DELETE,
        {"ids": ids, "k_tenant": list(keys[0]), "k_flow": list(keys[1]),
         "k_key": list(keys[2]), "k_exec": list(keys[3])},
    )  # fmt: skip
    row = await deleted.fetchone()
    return PurgeBatch(executions=len(verdict.ids), rows=int(row[0]), next_cursor=next_cursor)

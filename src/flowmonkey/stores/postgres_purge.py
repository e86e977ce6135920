"""``purge`` of the PostgreSQL store: one batch of old finished executions per call.

The candidates, their trees and the deletes run in ONE transaction; the rules (what is
kept) are ``stores.purge``'s, shared by every store. The plain candidates (no parent
still stored, no child, no idempotency key: nothing to decide) are found and deleted by
a server-side function (schema 8, ``flowmonkey_purge_batch``), so a batch costs the
client one round trip, not a row per execution; the others come back for the rules.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from flowmonkey.stores import purge as purge_rules
from flowmonkey.stores.base import PurgeBatch, PurgeQuery

__all__ = ["purge_others", "purge_plain"]

# -- statements (used only here) ---------------------------------------------------------

# One status's plain candidates, found and deleted on the server (schema 8).
PURGE_PLAIN = """
SELECT examined, last_at, last_id, purged, deleted, others, others_parent_of
FROM flowmonkey_purge_batch(%(status)s, %(cutoff)s, %(limit)s, %(flow_id)s, %(after_at)s,
                            %(after_id)s, %(excluded)s::text[], %(dry_run)s)
"""
# The candidates the server left to the rules: their headers, when they may hold a key.
PURGE_OTHERS = """
SELECT id, status, tenant_id, flow_id,
    CASE WHEN position('"idempotency_key"'::bytea IN spec) > 0 THEN spec END
FROM executions WHERE id = ANY(%(ids)s::text[])
"""
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


async def purge_plain(conn: Any, query: PurgeQuery) -> tuple[PurgeBatch, dict[str, bool]]:
    """The server's part of one batch, on an autocommit ``conn``: each status's call is
    one statement, so one transaction and one round trip. Returns the plain executions
    purged (with the pass's next cursor) and the candidates left to ``purge_others``
    (id -> has children)."""
    wanted = purge_rules.statuses(query)
    position, at, ident = purge_rules.decode_cursor(query.cursor)
    budget = query.limit
    executions = rows = 0
    others: dict[str, bool] = {}
    while position < len(wanted) and budget > 0:
        cur = await conn.execute(
            PURGE_PLAIN,
            {"status": wanted[position].value, "cutoff": query.older_than, "limit": budget,
             "flow_id": query.flow_id, "after_at": at, "after_id": ident,
             "excluded": list(query.exclude_flow_ids), "dry_run": query.dry_run},
        )  # fmt: skip
        examined, last_at, last_id, purged, deleted, other_ids, parent_of = await cur.fetchone()
        executions += purged
        rows += deleted
        others.update(zip(other_ids, parent_of, strict=True))
        budget -= examined
        if budget > 0:  # this status is done
            position, at, ident = position + 1, None, None
        else:
            at, ident = last_at, last_id
    next_cursor = purge_rules.encode_cursor(position, at, ident) if position < len(wanted) else None
    return PurgeBatch(executions=executions, rows=rows, next_cursor=next_cursor), others


async def purge_others(conn: Any, others: dict[str, bool], query: PurgeQuery) -> tuple[int, int]:
    """Decide and delete, inside an open transaction on ``conn``, the candidates with a
    key or children by ``stores.purge``'s rules; returns (executions, rows)."""
    roots: dict[str, purge_rules.Node] = {}  # candidates with children: walk their trees
    trees: dict[str, list[purge_rules.Node]] = defaultdict(list)
    cur = await conn.execute(PURGE_OTHERS, {"ids": list(others)})
    for row_id, status, tenant_id, flow_id, spec in await cur.fetchall():
        node = _node(row_id, status, tenant_id, flow_id, spec)
        if others[row_id]:
            roots[row_id] = node
        else:
            trees[row_id].append(node)
    if roots:
        cur = await conn.execute(PURGE_TREES, {"roots": list(roots)})
        for root, node_id, status, tenant_id, flow_id, spec in await cur.fetchall():
            node = (
                roots[root] if node_id == root else _node(node_id, status, tenant_id, flow_id, spec)
            )
            trees[root].append(node)
    verdict = purge_rules.decide(trees.values(), query.now)
    if query.dry_run or not verdict.ids:
        return len(verdict.ids), 0
    ids = orjson.dumps(verdict.ids).decode()
    await conn.execute(PURGE_LOCK, {"ids": ids})
    keys = list(zip(*verdict.keys, strict=True)) if verdict.keys else [(), (), (), ()]
    deleted = await conn.execute(
        PURGE_DELETE,
        {"ids": ids, "k_tenant": list(keys[0]), "k_flow": list(keys[1]),
         "k_key": list(keys[2]), "k_exec": list(keys[3])},
    )  # fmt: skip
    row = await deleted.fetchone()
    return len(verdict.ids), int(row[0])

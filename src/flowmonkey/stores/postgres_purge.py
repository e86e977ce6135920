"""``purge`` of the PostgreSQL store: one batch of old finished executions per call.

The candidates, their trees and the deletes run in ONE transaction; the rules (what is
kept) are ``stores.purge``'s, shared by every store.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from flowmonkey.stores import postgres_queries as q
from flowmonkey.stores import purge as purge_rules
from flowmonkey.stores.base import PurgeBatch, PurgeQuery

__all__ = ["purge_batch"]


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
            where += q.PURGE_FLOW
            params["flow_id"] = query.flow_id
        if at is not None:
            where += q.PURGE_AFTER
            params["after_at"], params["after_id"] = at, ident
        sql = q.PURGE_CANDIDATES.format(status=wanted[position].value, where=where)
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
        cur = await conn.execute(q.PURGE_TREES, {"roots": list(roots)})
        for root, node_id, status, tenant_id, flow_id, spec in await cur.fetchall():
            node = (
                roots[root] if node_id == root else _node(node_id, status, tenant_id, flow_id, spec)
            )
            trees[root].append(node)
    verdict = purge_rules.decide(trees.values(), query.now)
    if query.dry_run or not verdict.ids:
        return PurgeBatch(executions=len(verdict.ids), rows=0, next_cursor=next_cursor)
    ids = orjson.dumps(verdict.ids).decode()
    await conn.execute(q.PURGE_LOCK, {"ids": ids})
    keys = list(zip(*verdict.keys, strict=True)) if verdict.keys else [(), (), (), ()]
    deleted = await conn.execute(
        q.PURGE_DELETE,
        {"ids": ids, "k_tenant": list(keys[0]), "k_flow": list(keys[1]),
         "k_key": list(keys[2]), "k_exec": list(keys[3])},
    )  # fmt: skip
    row = await deleted.fetchone()
    return PurgeBatch(executions=len(verdict.ids), rows=int(row[0]), next_cursor=next_cursor)

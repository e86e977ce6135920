"""``SqliteStore.purge``: one batch of old finished executions, in the caller's write
transaction. The rules (what is kept) are ``stores.purge``'s, shared by every store."""

from __future__ import annotations

import sqlite3

import orjson

from flowmonkey.stores import purge as purge_rules
from flowmonkey.stores import sqlite_queries as q
from flowmonkey.stores.base import PurgeBatch, PurgeQuery

__all__ = ["purge"]

_loads = orjson.loads
_dumps = orjson.dumps

# A candidate with what decides whether its tree is walked: whether its parent still
# exists (then it is kept with it) and whether it has children, both index probes run by
# SQLite instead of a statement each from Python.
_CANDIDATES = """
SELECT id, created_at, updated_at, flow_id, status, tenant_id, info,
    parent_execution_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM executions AS p WHERE p.id = e.parent_execution_id),
    EXISTS (
        SELECT 1 FROM executions AS c INDEXED BY executions_parent
        WHERE c.parent_execution_id = e.id)
FROM executions AS e"""

# Children of one execution (the purge walks a candidate's tree).
SELECT_CHILD_NODES = """
SELECT id, status, tenant_id, flow_id, info FROM executions INDEXED BY executions_parent
WHERE parent_execution_id = ?
"""

# Children first. Each is ONE statement over the batch's ids (``json_each``): the
# per-statement overhead of ``executemany`` was a third of the delete's cost. The store's
# connection does not enforce foreign keys (see ``SqliteStore``), so deleting the
# execution row costs no lookup in each child table either.
PURGE_DELETES = tuple(
    f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))"
    for table, column in (
        ("events", "execution_id"),
        ("execution_context", "execution_id"),
        ("resume_tokens", "execution_id"),
        ("tasks", "execution_id"),
        ("executions", "id"),
    )
)

PURGE_KEY = """
DELETE FROM idempotency_keys
WHERE tenant_id = ? AND flow_id = ? AND key = ? AND execution_id = ?
"""


_KEY_MARK = b'"idempotency_key"'


def _node(
    ident: str, status: str, tenant_id: str | None, flow_id: str, info: bytes
) -> purge_rules.Node:
    if _KEY_MARK not in info:  # no key: nothing in the header matters (most executions)
        return purge_rules.Node(ident, status)
    header = _loads(info)
    header["tenant_id"], header["flow_id"] = tenant_id, flow_id
    key, expires = purge_rules.idempotency_of(header)
    return purge_rules.Node(ident, status, key, expires)


def _tree(conn: sqlite3.Connection, root: purge_rules.Node) -> list[purge_rules.Node]:
    """The root and every descendant (through the parent index)."""
    tree = [root]
    for node in tree:  # grows while it is walked: breadth first
        tree.extend(_node(*row) for row in conn.execute(SELECT_CHILD_NODES, (node.id,)))
    return tree


def purge(conn: sqlite3.Connection, query: PurgeQuery) -> PurgeBatch:
    """One batch of a purge pass (see ``Store.purge``): examines at most ``query.limit``
    terminal executions through a listing index, oldest first."""
    wanted = purge_rules.statuses(query)
    position, at, ident = purge_rules.decode_cursor(query.cursor)
    cutoff = q.to_us(query.older_than)
    excluded = set(query.exclude_flow_ids)
    budget = query.limit
    trees: list[list[purge_rules.Node]] = []
    while position < len(wanted) and budget > 0:
        where, args = ["status = ?", "created_at < ?"], [str(wanted[position]), cutoff]
        index = "executions_status"
        if query.flow_id is not None:
            index = "executions_flow"
            where.append("flow_id = ?")
            args.append(query.flow_id)
        if at is not None:
            where.append("(created_at, id) > (?, ?)")
            args.extend((q.to_us(at), ident))
        found = conn.execute(
            f"{_CANDIDATES} INDEXED BY {index} WHERE {' AND '.join(where)} "
            "ORDER BY created_at, id LIMIT ?",
            (*args, budget),
        ).fetchall()
        budget -= len(found)
        for row_id, _, updated, flow_id, status, tenant_id, info, kept, parent_of in found:
            if updated >= cutoff or flow_id in excluded or kept:
                continue  # still recent, another pass's flow, or kept with its parent
            node = _node(row_id, status, tenant_id, flow_id, info)
            trees.append(_tree(conn, node) if parent_of else [node])
        if budget > 0:  # this status is done
            position, at, ident = position + 1, None, None
        else:
            at, ident = q.from_us(found[-1][1]), found[-1][0]
    next_cursor = purge_rules.encode_cursor(position, at, ident) if position < len(wanted) else None
    verdict = purge_rules.decide(trees, query.now)
    if query.dry_run or not verdict.ids:
        return PurgeBatch(executions=len(verdict.ids), rows=0, next_cursor=next_cursor)
    ids = (_dumps(verdict.ids),)
    deleted = sum(conn.execute(sql, ids).rowcount for sql in PURGE_DELETES)
    if verdict.keys:
        deleted += conn.executemany(PURGE_KEY, verdict.keys).rowcount
    return PurgeBatch(executions=len(verdict.ids), rows=deleted, next_cursor=next_cursor)

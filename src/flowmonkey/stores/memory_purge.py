"""``MemoryStore.purge``: the retention rules (``stores.purge``) over the store's dicts.

Candidates are read from the store's per-status index, oldest first from the cursor, and
trees through its parent index (``memory_index``), so a batch costs its own size.
"""

from __future__ import annotations

from typing import Any

from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.stores import purge as purge_rules
from flowmonkey.stores.base import PurgeBatch, PurgeQuery
from flowmonkey.stores.memory_index import Indexes

__all__ = ["purge"]


def purge(
    rows: dict[str, Any],
    tokens: dict[str, ResumeTokenRecord],
    tasks: dict[str, Task],
    idem: dict[tuple[str, str, str], str],
    index: Indexes,
    query: PurgeQuery,
) -> PurgeBatch:
    """One batch over ``MemoryStore``'s rows, tokens, tasks and idempotency keys."""
    wanted = purge_rules.statuses(query)
    position, at, ident = purge_rules.decode_cursor(query.cursor)
    excluded = set(query.exclude_flow_ids)
    budget = query.limit
    trees: list[list[purge_rules.Node]] = []
    while position < len(wanted) and budget > 0:
        status = wanted[position]
        found: list[tuple[Any, ...]] = []
        for key in index.by_status[status].ascending(None if at is None else (at, ident)):
            if key[0] >= query.older_than or len(found) == budget:
                break
            if query.flow_id is None or rows[key[1]].execution.flow_id == query.flow_id:
                found.append(key)
        budget -= len(found)
        for _, row_id in found:
            header = rows[row_id].execution
            if header.updated_at >= query.older_than or header.flow_id in excluded:
                continue
            if header.parent_execution_id in rows:
                continue  # kept with its parent
            trees.append(_tree(rows, index, row_id))
        if budget > 0:
            position, at, ident = position + 1, None, None
        else:
            at, ident = found[-1]
    next_cursor = purge_rules.encode_cursor(position, at, ident) if position < len(wanted) else None
    verdict = purge_rules.decide(trees, query.now)
    if query.dry_run:
        return PurgeBatch(executions=len(verdict.ids), rows=0, next_cursor=next_cursor)
    deleted = _delete(rows, tokens, tasks, idem, index, verdict)
    return PurgeBatch(executions=len(verdict.ids), rows=deleted, next_cursor=next_cursor)


def _tree(rows: dict[str, Any], index: Indexes, root_id: str) -> list[purge_rules.Node]:
    children = index.by_attr["parent_execution_id"]
    tree = []
    todo = [root_id]
    for ident in todo:
        header = rows[ident].execution
        key, expires = purge_rules.idempotency_of(
            {"tenant_id": header.tenant_id, "flow_id": header.flow_id,
             "idempotency_key": header.idempotency_key,
             "idempotency_expires_at": header.idempotency_expires_at}
        )  # fmt: skip
        tree.append(purge_rules.Node(ident, str(header.status), key, expires))
        found = children.get(ident)
        if found is not None:
            todo.extend(child for _, child in found.ascending())
    return tree


def _delete(
    rows: dict[str, Any],
    tokens: dict[str, ResumeTokenRecord],
    tasks: dict[str, Task],
    idem: dict[tuple[str, str, str], str],
    index: Indexes,
    verdict: purge_rules.Verdict,
) -> int:
    """Drop the executions and what they own; the number of records removed, counted
    as the SQL stores count rows (each history record and event counted once)."""
    count = 0
    for ident in verdict.ids:
        row = rows.pop(ident)
        count += 1 + len(row.context) + len(row.history) + len(row.events)
        for token_hash in index.tokens_of.get(ident, ()):
            del tokens[token_hash]
            count += 1
        for task_id in index.tasks_of.get(ident, ()):
            del tasks[task_id]
            count += 1
        index.remove(row)
    for tenant, flow_id, key, ident in verdict.keys:
        if idem.get((tenant, flow_id, key)) == ident:
            del idem[(tenant, flow_id, key)]
            count += 1
    return count

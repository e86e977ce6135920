"""``MemoryStore.purge``: the retention rules (``stores.purge``) over the store's dicts.

A plain scan, like the rest of the in-memory store (it is for tests and simulation).
"""

from __future__ import annotations

from typing import Any

from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.stores import purge as purge_rules
from flowmonkey.stores.base import PurgeBatch, PurgeQuery

__all__ = ["purge"]


def purge(
    rows: dict[str, Any],
    tokens: dict[str, ResumeTokenRecord],
    tasks: dict[str, Task],
    idem: dict[tuple[str, str, str], str],
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
        found = sorted(
            (e.created_at, e.id)
            for e in (r.execution for r in rows.values())
            if e.status is status
            and e.created_at < query.older_than
            and (query.flow_id is None or e.flow_id == query.flow_id)
            and (at is None or (e.created_at, e.id) > (at, ident))
        )[:budget]
        budget -= len(found)
        for _, row_id in found:
            header = rows[row_id].execution
            if header.updated_at >= query.older_than or header.flow_id in excluded:
                continue
            if header.parent_execution_id in rows:
                continue  # kept with its parent
            trees.append(_tree(rows, row_id))
        if budget > 0:
            position, at, ident = position + 1, None, None
        else:
            at, ident = found[-1]
    next_cursor = purge_rules.encode_cursor(position, at, ident) if position < len(wanted) else None
    verdict = purge_rules.decide(trees, query.now)
    if query.dry_run:
        return PurgeBatch(executions=len(verdict.ids), rows=0, next_cursor=next_cursor)
    deleted = _delete(rows, tokens, tasks, idem, verdict)
    return PurgeBatch(executions=len(verdict.ids), rows=deleted, next_cursor=next_cursor)


def _tree(rows: dict[str, Any], root_id: str) -> list[purge_rules.Node]:
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
        todo.extend(
            r.execution.id for r in rows.values() if r.execution.parent_execution_id == ident
        )
    return tree


def _delete(
    rows: dict[str, Any],
    tokens: dict[str, ResumeTokenRecord],
    tasks: dict[str, Task],
    idem: dict[tuple[str, str, str], str],
    verdict: purge_rules.Verdict,
) -> int:
    """Drop the executions and what they own; the number of records removed, counted
    as the SQL stores count rows (each history record and event counted once)."""
    gone = set(verdict.ids)
    count = 0
    for ident in verdict.ids:
        row = rows.pop(ident)
        count += 1 + len(row.context) + len(row.history) + len(row.events)
    for token_hash in [h for h, t in tokens.items() if t.execution_id in gone]:
        del tokens[token_hash]
        count += 1
    for task_id in [i for i, t in tasks.items() if t.execution_id in gone]:
        del tasks[task_id]
        count += 1
    for tenant, flow_id, key, ident in verdict.keys:
        if idem.get((tenant, flow_id, key)) == ident:
            del idem[(tenant, flow_id, key)]
            count += 1
    return count

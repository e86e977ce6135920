"""Bulk actions: cancel or retry many executions, by ids or by a listing filter.

Shared by ``POST /api/v1/executions/bulk`` and ``flowmonkey cancel|retry --filter``. Each
execution is acted on in its own transaction (one failing never stops the rest); the
result says, per execution that could not be acted on, why (its error code).
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flowmonkey import errors
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.stores.base import ExecutionQuery

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine

__all__ = ["BULK_MAX", "BulkResult", "apply", "select"]

BULK_MAX = 10_000
"""Executions one bulk action acts on at most."""

Action = Literal["cancel", "retry"]


@dataclass(slots=True, kw_only=True)
class BulkResult:
    """What a bulk action did (or, with ``dry_run``, would do)."""

    matched: int
    succeeded: int = 0
    failed: builtins.list[dict[str, str]] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """``{"matched", "succeeded", "failed": [{"id", "code"}], "dry_run"}``."""
        return {
            "matched": self.matched,
            "succeeded": self.succeeded,
            "failed": list(self.failed),
            "dry_run": self.dry_run,
        }


async def select(engine: Engine, query: ExecutionQuery, *, limit: int = BULK_MAX) -> list[str]:
    """Ids matching ``query`` (newest first), at most ``limit``; the query's own
    ``limit`` and ``cursor`` are ignored."""
    ids: builtins.list[str] = []
    cursor: str | None = None
    while len(ids) < limit:
        page = await engine.store.list(
            ExecutionQuery(
                status=query.status, flow_id=query.flow_id, tenant_id=query.tenant_id,
                correlation_id=query.correlation_id,
                parent_execution_id=query.parent_execution_id,
                created_before=query.created_before, created_after=query.created_after,
                limit=min(500, limit - len(ids)), cursor=cursor,
            )
        )  # fmt: skip
        ids.extend(e.id for e in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return ids


def _refusal(action: Action, execution: Execution) -> errors.FlowMonkeyError | None:
    if action == "cancel" and execution.status.is_terminal:
        return errors.ExecutionTerminal(execution.id, str(execution.status))
    if action == "retry" and execution.status is not ExecutionStatus.FAILED:
        return errors.ExecutionNotFailed(execution.id, str(execution.status))
    return None


async def apply(
    engine: Engine,
    action: Action,
    ids: Iterable[str],
    *,
    reason: str | None = None,
    dry_run: bool = False,
    source: str = "user",
    on_retried: Callable[[Execution], Awaitable[Any]] | None = None,
) -> BulkResult:
    """Cancel or retry each id (retried executions are left ``pending`` for a worker,
    or handed to ``on_retried``). ``dry_run`` only checks each one's status."""
    ids = builtins.list(dict.fromkeys(ids))
    result = BulkResult(matched=len(ids), dry_run=dry_run)
    for ident in ids:
        try:
            if dry_run:
                found = await engine.store.get(ident, history=False)
                if found is None:
                    raise errors.ExecutionNotFound(ident)
                refusal = _refusal(action, found)
                if refusal is not None:
                    raise refusal
            elif action == "cancel":
                cancelled = await engine.cancel(ident, source=source, reason=reason)
                if not cancelled.cancelled:
                    status = cancelled.previous_status
                    raise errors.ExecutionTerminal(ident, str(status or "terminal"))
            else:
                retried = await engine.retry(ident, run_next=False)
                if on_retried is not None:
                    await on_retried(retried.execution)
        except errors.FlowMonkeyError as exc:
            result.failed.append({"id": ident, "code": exc.code})
            continue
        result.succeeded += 1
    return result

"""``ExecutionReads``: what the ``Engine`` reads back from its store (executions, pages of
them, event logs, user tasks), a base class of its own so the facade's module holds the
operations that change executions."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Iterable

from flowmonkey.engine.attributes import RuntimeAttributes
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.records import Task
from flowmonkey.stores.base import ExecutionQuery, Page, TaskQuery

__all__ = ["ExecutionReads"]


class ExecutionReads(RuntimeAttributes):
    """Reads of executions, events and tasks (each opens the store first if needed)."""

    _ensure_ready: Callable[[], Awaitable[None]]
    """Open the store if it is not open yet (``Engine`` provides it)."""

    async def get(self, execution_id: str) -> Execution | None:
        """The execution as stored, or ``None``."""
        await self._ensure_ready()
        return await self.store.get(execution_id)

    async def list(
        self,
        *,
        status: ExecutionStatus | str | Iterable[ExecutionStatus | str] | None = None,
        flow_id: str | None = None,
        tenant_id: str | None = None,
        correlation_id: str | None = None,
        parent_execution_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Execution]:
        """A page of executions, newest first."""
        await self._ensure_ready()
        if status is None:
            statuses = None
        elif isinstance(status, str):
            statuses = [ExecutionStatus(status)]
        else:
            statuses = [ExecutionStatus(s) for s in status]
        return await self.store.list(
            ExecutionQuery(
                status=statuses,
                flow_id=flow_id,
                tenant_id=tenant_id,
                correlation_id=correlation_id,
                parent_execution_id=parent_execution_id,
                limit=limit,
                cursor=cursor,
            )
        )

    async def events(self, execution_id: str, *, after: int = 0) -> builtins.list[Event]:
        """The persisted event log of an execution, in order."""
        await self._ensure_ready()
        return await self.store.events(execution_id, after=after)

    async def settle_events(self, timeout: float | None = None) -> bool:
        """Wait until events that waited for another run's lease (an ``idempotency.hit``
        on an execution being run) are in the log. False if ``timeout`` came first."""
        return await self.runtime.late_events.settle(timeout)

    async def tasks(
        self,
        *,
        assignee: str | None = None,
        role: str | None = None,
        status: str | None = "pending",
        tenant_id: str | None = None,
        execution_id: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Task]:
        """User tasks by assignee/role/status/tenant."""
        await self._ensure_ready()
        return await self.store.list_tasks(
            TaskQuery(
                assignee=assignee,
                role=role,
                status=status,
                tenant_id=tenant_id,
                execution_id=execution_id,
                limit=limit,
            )
        )

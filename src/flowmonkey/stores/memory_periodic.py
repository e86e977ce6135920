"""The periodic queries of ``MemoryStore`` (due timers and deadlines, stale leases,
runnable counts), each a walk of one of its indexes (``memory_index``) that stops at the
first execution not yet due: they cost the due work, not the number stored."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores.memory_index import Indexes

__all__ = ["MemoryPeriodic"]

_RUNNING = ExecutionStatus.RUNNING
_PENDING = ExecutionStatus.PENDING
_WAITING = ExecutionStatus.WAITING


class MemoryPeriodic:
    """Periodic queries of ``MemoryStore`` (a mixin: the store owns rows and indexes)."""

    _rows: dict[str, Any]
    _index: Indexes

    def _runnable(self, row: Any, now: datetime) -> bool:
        header = row.execution
        lease_free = row.lease_owner is None or (
            row.lease_expires is not None and row.lease_expires <= now
        )
        if not lease_free:
            return False
        if header.status is _PENDING:
            return True
        if header.status is _WAITING:
            return header.wake_at is not None and header.wake_at <= now
        return header.status is _RUNNING and row.lease_owner is not None

    def _claimable(self, now: datetime) -> builtins.list[Any]:
        # Rows whose claim time has come, in no particular order; the index stops at the
        # first row not yet claimable.
        rows = self._rows
        out = []
        for at, ident in self._index.ready.ascending():
            if at > now:
                break
            row = rows[ident]
            if self._runnable(row, now):
                out.append(row)
        return out

    async def count_by_status(
        self, *, tenant_id: str | None = None, flow_id: str | None = None
    ) -> dict[str, int]:
        """Executions per status, by tenant and flow."""
        if tenant_id is None and flow_id is None:
            return {s.value: len(k) for s, k in self._index.by_status.items() if k}
        by_attr = self._index.by_attr
        found = by_attr["tenant_id" if tenant_id is not None else "flow_id"].get(
            tenant_id if tenant_id is not None else flow_id  # type: ignore[arg-type]
        )
        out: dict[str, int] = {}
        for _, ident in found.ascending() if found is not None else ():
            header = self._rows[ident].execution
            if flow_id is not None and header.flow_id != flow_id:
                continue
            out[header.status.value] = out.get(header.status.value, 0) + 1
        return out

    async def runnable_by_flow(self, *, now: datetime) -> dict[tuple[str, str], int]:
        """Runnable executions per ``(flow_id, flow_version)``."""
        out: dict[tuple[str, str], int] = {}
        for row in self._claimable(now):
            key = (row.execution.flow_id, row.execution.flow_version)
            out[key] = out.get(key, 0) + 1
        return out

    async def due(self, *, now: datetime, limit: int) -> builtins.list[str]:
        """Unleased executions with a due wake, deadline or wait deadline, earliest first."""
        rows = self._rows
        out: builtins.list[str] = []
        for at, ident in self._index.due.ascending():
            if at > now or len(out) == limit:
                break
            row = rows[ident]
            if row.lease_owner is not None and (
                row.lease_expires is None or row.lease_expires > now
            ):
                continue
            out.append(ident)
        return out

    async def stale(
        self, *, now: datetime, updated_before: datetime, limit: int
    ) -> builtins.list[str]:
        """Running executions whose lease expired (or, unleased, not updated lately)."""
        rows = self._rows
        out = []
        for at, ident in self._index.leased.ascending():
            if at > now:
                break
            out.append((rows[ident].execution.updated_at, ident))
        # Idle rows come oldest ``updated_at`` first: beyond the first ``limit`` of them
        # none can make the page.
        for n, (at, ident) in enumerate(self._index.idle.ascending()):
            if at >= updated_before or n == limit:
                break
            out.append((at, ident))
        out.sort()
        return [ident for _, ident in out[:limit]]

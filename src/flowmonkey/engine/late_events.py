"""Events about an execution that happen outside any step of it (``idempotency.hit``).

They are appended to the execution's persisted log by the store (``append_event``) with
its next sequence number. While another run holds the execution's live lease, that run's
commits own the numbering, so the event is delivered to listeners at once and appended
in the background as soon as the lease is given back (retried with a capped backoff);
``Engine.settle_events()`` waits for those appends and ``Engine.close()`` gives them a
short grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any, Protocol

from flowmonkey import errors
from flowmonkey.clock import Clock
from flowmonkey.engine.bus import EventBus
from flowmonkey.model.events import Event
from flowmonkey.stores.base import Store

__all__ = ["LateEvents", "Sharing"]


class Sharing(Protocol):
    """What this reads of the engine's runtime."""

    store: Store
    clock: Clock
    bus: EventBus


log = logging.getLogger("flowmonkey.engine")

_FIRST_RETRY = 0.02
_MAX_RETRY = 1.0


class LateEvents:
    """Appends events that arrive outside a step; see the module docstring."""

    def __init__(self, engine: Sharing) -> None:
        self.engine = engine
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(
        self,
        execution_id: str,
        type: str,
        data: dict[str, Any],
        at: datetime,
        tenant_id: str | None = None,
    ) -> Event:
        """Persist (now or once the live lease is gone) and deliver one event."""
        engine = self.engine
        data = {**data, "execution_id": execution_id}
        stored = await engine.store.append_event(
            execution_id, type, data, at=at, now=engine.clock.now()
        )
        if stored is None:
            task = asyncio.get_running_loop().create_task(
                self._append_later(execution_id, type, data, at),
                name=f"flowmonkey-late-event:{execution_id}",
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            # Delivered now; its sequence is assigned when it is appended.
            stored = Event(type, execution_id, at, data, 0, tenant_id)
        engine.bus.emit([stored])
        return stored

    async def _append_later(
        self, execution_id: str, type: str, data: dict[str, Any], at: datetime
    ) -> None:
        engine = self.engine
        delay = _FIRST_RETRY
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY)
            try:
                stored = await engine.store.append_event(
                    execution_id, type, data, at=at, now=engine.clock.now()
                )
            except errors.ExecutionNotFound:
                return
            except Exception as exc:
                log.warning("appending %s to %s failed (retrying): %s", type, execution_id, exc)
                continue
            if stored is not None:
                return

    async def settle(self, timeout: float | None = None) -> bool:
        """Wait for pending appends; False if some were still pending at ``timeout``."""
        pending = set(self._tasks)
        if not pending:
            return True
        _, left = await asyncio.wait(pending, timeout=timeout)
        return not left

    async def close(self, grace: float) -> None:
        """Give pending appends ``grace`` seconds, then drop them (logged)."""
        if await self.settle(grace):
            return
        for task in set(self._tasks):
            log.warning("dropping an event not yet appended: %s", task.get_name())
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

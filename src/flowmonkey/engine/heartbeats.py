"""``LeaseKeeper``: one background task that keeps the leases of an engine's runs alive."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from flowmonkey import errors
from flowmonkey.engine.options import EngineOptions

__all__ = ["Driving", "LeaseKeeper"]

log = logging.getLogger("flowmonkey.engine")


class Driving(Protocol):
    """What the keeper reads of its engine's runtime: the lease length and the runs."""

    options: EngineOptions
    inflight: dict[str, Any]


class LeaseKeeper:
    """Heartbeats every run the engine is driving (its ``inflight`` runs).

    Started lazily from inside the event loop (``ensure_running``) because the engine
    may be constructed outside one.
    """

    def __init__(self, engine: Driving) -> None:
        self._engine = engine
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Start the heartbeat loop unless it is already running."""
        task = self._task
        if task is None or task.done():
            self._task = asyncio.get_running_loop().create_task(self._heartbeats())

    async def stop(self) -> None:
        """Cancel the heartbeat loop and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _heartbeats(self) -> None:
        """Extend the lease of every run this engine drives, every third of a lease.

        Runs of many quick steps need it as much as one long handler: a lease is only
        renewed here, not by step commits.
        """
        engine = self._engine
        interval = max(engine.options.lease_for.total_seconds() / 3, 0.05)
        failures = 0
        while True:
            await asyncio.sleep(interval)
            for run in tuple(engine.inflight.values()):
                if run.released:
                    continue
                try:
                    await run.heartbeat()
                    failures = 0
                except errors.LeaseLost:
                    if _released(run):
                        continue  # it released its lease while this heartbeat was out
                    log.warning("lost the lease on %s; cancelling its step", run.execution.id)
                    run.cancel_handlers()
                except Exception as exc:
                    failures += 1
                    # One line per failure: the store may be briefly unreachable.
                    log.warning(
                        "heartbeat for %s failed (%d in a row): %s", run.execution.id, failures, exc
                    )


def _released(run: Any) -> bool:
    # A function, not an inline check: the flag changes while the heartbeat awaits.
    return bool(run.released)

"""The schedule loop of a ``Worker``: fires due schedule times as soon as they are due.

It sleeps until the earliest ``next_fire_at`` of the store's schedules (or a jittered
time it saw, or ``schedule_interval`` at most, so schedules made by other processes are
noticed), then calls ``engine.fire_schedules()``. Exactly-once comes from the store (see
``engine/scheduling.py``), so every worker may run this loop at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowmonkey.worker.scheduler import Outage, wait_or_timeout

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine

__all__ = ["run_schedules"]

_BUSY_RETRY = 0.05
"""Seconds to wait when a due schedule is held by another process right now."""
_PAST_DUE = 0.0005
"""Seconds slept past a fire time, so the wake finds it due."""


async def run_schedules(
    engine: Engine,
    interval: float,
    *,
    stopping: asyncio.Event,
    on_work: Callable[[list[str]], None],
    log: logging.Logger,
    extra: Mapping[str, Any],
    max_backoff: float = 30.0,
) -> None:
    """Fire schedules until ``stopping`` is set; failures back off and are retried."""
    outage = Outage(log, "firing schedules", extra)
    delay = interval
    while not stopping.is_set():
        try:
            report = await engine.fire_schedules()
            if report.created:
                on_work(report.created)
            upcoming = await engine.store.next_schedule_time()
        except Exception as exc:
            delay = min(max(delay * 2, interval), max_backoff)
            outage.failed(exc, delay)
            await wait_or_timeout(stopping, delay)
            continue
        outage.succeeded()
        delay = interval
        now = engine.clock.now()
        wait = interval
        for when in (upcoming, report.wake_at):
            if when is not None:
                wait = min(wait, _wait_for(when, now))
        await wait_or_timeout(stopping, wait)


def _wait_for(when: datetime, now: datetime) -> float:
    """Seconds to sleep for a fire time: until just after it when it is ahead (the loop's
    monotonic timer may wake a hair early, and a not-yet-due time must not cost another
    wait), or ``_BUSY_RETRY`` when it is due now but was not ours (another process holds
    it and will fire it)."""
    ahead = (when - now).total_seconds()
    return ahead + _PAST_DUE if ahead > 0 else _BUSY_RETRY

"""Where the steps of an execution started or resumed through the API run.

``inline`` apps (the default; ``serve`` with its in-process worker) drive the execution
in this process when its flow's handlers are registered here; otherwise the execution is
left ``pending`` for a worker. ``wait`` then watches the store for an outcome.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING

from flowmonkey import errors
from flowmonkey.model.execution import Execution, ExecutionStatus

if TYPE_CHECKING:
    from flowmonkey.api.state import ApiState

__all__ = ["can_run_here", "settle"]

_UNSETTLED = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING})


async def can_run_here(state: ApiState, execution: Execution) -> bool:
    """Whether this process may drive ``execution`` (inline and every handler present)."""
    if not state.settings.inline:
        return False
    engine = state.engine
    try:
        flow = await engine.get_flow(execution.flow_id, execution.flow_version)
    except errors.FlowNotFound:
        return False
    return all(engine.resolve_handler(step) is not None for step in flow.steps.values())


async def settle(state: ApiState, execution: Execution, wait: float) -> Execution:
    """Drive (inline) or watch ``execution`` for up to ``wait`` seconds; its latest state.

    An inline run goes on in the background after ``wait`` (the app awaits it at
    shutdown); ``wait=0`` only starts it.
    """
    engine = state.engine
    deadline = time.monotonic() + wait
    if execution.status is ExecutionStatus.PENDING and await can_run_here(state, execution):
        task = state.spawn(_drive(state, execution.id, deadline))
        if wait <= 0:
            return execution
        done, _ = await asyncio.wait({task}, timeout=wait)
        if task in done and task.exception() is None:
            finished: Execution = task.result()
            return finished
        latest = await engine.get(execution.id)
        return latest or execution
    if wait <= 0 or execution.status not in _UNSETTLED:
        return execution
    pause = 0.005
    latest = execution
    while time.monotonic() < deadline and not state.stopping.is_set():
        await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, state.settings.event_poll_interval)
        found = await engine.get(execution.id)
        if found is None:
            break
        latest = found
        if latest.status not in _UNSETTLED and not _wakes_before(
            latest, deadline, engine.clock.now()
        ):
            break
    return latest


def _wakes_before(execution: Execution, deadline: float, now: datetime) -> bool:
    """A timer wait (retry backoff, short delay) that ends before ``deadline``."""
    if execution.status is not ExecutionStatus.WAITING or execution.wake_at is None:
        return False
    remaining = (execution.wake_at - now).total_seconds()
    return time.monotonic() + remaining < deadline


async def _drive(state: ApiState, execution_id: str, deadline: float) -> Execution:
    """Run it here; while it waits on a timer that ends before ``deadline`` (a retry
    backoff), sleep until then and go on, so ``wait`` answers the outcome, not the pause."""
    engine = state.engine
    result = await engine.run(execution_id)
    while (
        _wakes_before(result.execution, deadline, engine.clock.now())
        and not state.stopping.is_set()
    ):
        assert result.wake_at is not None
        pause = (result.wake_at - engine.clock.now()).total_seconds()
        await asyncio.sleep(max(pause, 0.0))
        result = await engine.run(execution_id)
    return result.execution

"""Where the steps of an execution started or resumed through the API run.

``inline`` apps (the default; ``serve`` with its in-process worker) drive the execution
in this process when its flow's handlers are registered here; otherwise the execution is
left ``pending`` for a worker. ``wait`` then watches the store for an outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.engine.creation import create_execution
from flowmonkey.engine.results import RunResult
from flowmonkey.model.execution import Execution, ExecutionStatus

if TYPE_CHECKING:
    from flowmonkey.api.state import ApiState

__all__ = ["can_run_here", "settle", "start"]

_UNSETTLED = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING})


async def can_run_here(state: ApiState, execution: Execution) -> bool:
    """Whether this process may drive ``execution`` (inline and every handler present)."""
    return await _can_run_flow(state, execution.flow_id, execution.flow_version)


async def _can_run_flow(state: ApiState, flow_id: str, version: str | None) -> bool:
    if not state.settings.inline:
        return False
    engine = state.engine
    try:
        flow = await engine.get_flow(flow_id, version)
    except errors.FlowNotFound:
        return False
    return all(engine.resolve_handler(step) is not None for step in flow.steps.values())


async def start(
    state: ApiState,
    flow_id: str,
    context: Mapping[str, Any],
    wait: float,
    **options: Any,
) -> tuple[Execution, bool]:
    """Create an execution (``options`` as ``Engine.create``) and settle it for up to
    ``wait`` seconds: ``(execution, created)``.

    Inline with ``wait``: the execution is stored already leased to this process (as
    ``engine.start`` does), so its first step starts without a second transaction and no
    worker is woken for it.
    """
    engine = state.engine
    if wait > 0 and await _can_run_flow(state, flow_id, options.get("version")):
        created, run = await create_execution(
            engine.runtime, flow_id, context, lease_self=True, **options
        )
        if run is not None:
            deadline = time.monotonic() + wait
            task = state.spawn(_drive(state, run.execution.id, deadline, engine.drive(run)))
            return await _wait_for(state, task, run.execution, wait), True
        if not created.created:
            return created.execution, False
    plain = await engine.create(flow_id, context, **options)
    if not plain.created:
        return plain.execution, False
    return await settle(state, plain.execution, wait), True


async def _wait_for(
    state: ApiState, task: asyncio.Task[Execution], execution: Execution, wait: float
) -> Execution:
    done, _ = await asyncio.wait({task}, timeout=wait)
    if task in done and task.exception() is None:
        finished: Execution = task.result()
        return finished
    latest = await state.engine.get(execution.id)
    return latest or execution


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
        return await _wait_for(state, task, execution, wait)
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


async def _drive(
    state: ApiState,
    execution_id: str,
    deadline: float,
    first: Awaitable[RunResult] | None = None,
) -> Execution:
    """Run it here (``first``: the run already under way); while it waits on a timer
    that ends before ``deadline`` (a retry backoff), sleep until then and go on, so
    ``wait`` answers the outcome, not the pause."""
    engine = state.engine
    result = await (first if first is not None else engine.run(execution_id))
    while (
        _wakes_before(result.execution, deadline, engine.clock.now())
        and not state.stopping.is_set()
    ):
        assert result.wake_at is not None
        pause = (result.wake_at - engine.clock.now()).total_seconds()
        await asyncio.sleep(max(pause, 0.0))
        result = await engine.run(execution_id)
    return result.execution

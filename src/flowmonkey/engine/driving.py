"""The run loop: wrap a granted lease in a ``Run`` and step it until it stops."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from flowmonkey import errors
from flowmonkey.engine import timers
from flowmonkey.engine.branches import run_branches
from flowmonkey.engine.leasing import acquire, open_run
from flowmonkey.engine.results import RunResult, StepResult
from flowmonkey.engine.step import StepCancelled, execute_step
from flowmonkey.model.execution import ExecutionStatus, TokenStatus

if TYPE_CHECKING:
    from flowmonkey.engine.run import Run
    from flowmonkey.engine.runtime import Runtime

__all__ = ["drive", "run_until_idle", "step_once"]


async def step_once(engine: Runtime, execution_id: str) -> StepResult:
    """See ``Engine.step``."""
    acquired = await acquire(engine, execution_id)
    run = await open_run(engine, acquired)
    if run is None:
        ex = acquired.execution
        return StepResult(
            step_id=None, outcome=None, next_step_id=None, status=ex.status, execution=ex
        )
    outcome: list[tuple[str | None, str | None, str | None]] = []
    result = await drive(engine, run, max_steps=1, record=outcome)
    step_id, kind, next_id = outcome[0] if outcome else (None, None, None)
    return StepResult(
        step_id=step_id,
        outcome=kind,
        next_step_id=next_id,
        status=result.status,
        execution=result.execution,
    )


async def drive(
    engine: Runtime,
    run: Run,
    *,
    max_steps: int | None = None,
    record: list[tuple[str | None, str | None, str | None]] | None = None,
    stop: asyncio.Event | None = None,
) -> RunResult:
    """See ``Engine.drive``."""
    execution = run.execution
    engine.inflight[execution.id] = run
    engine.leases.ensure_running()
    steps = 0
    waiting = ExecutionStatus.WAITING
    try:
        await timers.apply_due(engine, run)
        while True:
            status = execution.status
            if status.is_terminal or status is waiting:
                break
            # Between steps only the execution deadline can fall due; the time of the
            # last commit is a close enough "now" for that check (saves a clock read).
            deadline = execution.deadline_at
            if steps and deadline is not None and deadline <= execution.updated_at:
                await timers.apply_due(engine, run)
                continue
            token = run.active_token()
            if token is None:
                break
            if max_steps is not None and steps >= max_steps:
                break
            if stop is not None and stop.is_set():
                break
            if run.concurrent or (
                len(execution.tokens) > 1
                and sum(t.status is TokenStatus.ACTIVE for t in execution.tokens) > 1
            ):
                await run_branches(engine, run)
                steps += 1
                continue
            step_id = token.step_id
            kind, next_id = await execute_step(engine, run, token)
            steps += 1
            if record is not None:
                record.append((step_id, kind if kind != "error" else None, next_id))
        if not run.released:
            if execution.status is ExecutionStatus.RUNNING:
                # Stopped between steps (``step()``): leave it runnable for anyone.
                execution.status = ExecutionStatus.PENDING
                await run.commit(release=True)
                await engine.notify_runnable(execution.id)
            else:
                await run.commit(release=True)
    except (errors.LeaseLost, StepCancelled):
        fresh = await engine.store.get(execution.id)
        if fresh is None:
            raise errors.ExecutionNotFound(execution.id) from None
        return RunResult.of(fresh)
    finally:
        if engine.inflight.get(execution.id) is run:
            del engine.inflight[execution.id]
    return RunResult.of(execution)


async def run_until_idle(engine: Runtime, *, max_rounds: int) -> int:
    """See ``Engine.run_until_idle``."""
    driven = 0
    for _ in range(max_rounds):
        await timers.tick_timers(engine, limit=1000)
        claimed = await engine.store.claim(
            owner=engine.owner,
            now=engine.clock.now(),
            lease_for=engine.options.lease_for,
            limit=100,
        )
        if not claimed:
            return driven
        for acquired in claimed:
            run = await open_run(engine, acquired)
            if run is not None:
                await drive(engine, run)
                driven += 1
    return driven

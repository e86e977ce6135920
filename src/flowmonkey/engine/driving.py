"""The run loop: wrap a granted lease in a ``Run`` and step it until it stops."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from flowmonkey import errors
from flowmonkey.engine import timers
from flowmonkey.engine.leasing import release_untouched
from flowmonkey.engine.lookup import TOKEN_MOVES
from flowmonkey.engine.results import RunResult, StepResult
from flowmonkey.engine.run import Run
from flowmonkey.engine.step import StepCancelled, execute_step
from flowmonkey.model.execution import ExecutionStatus, TokenStatus
from flowmonkey.model.flow import Flow
from flowmonkey.stores.base import Acquired

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine

__all__ = [
    "drive",
    "give_back",
    "give_back_acquired",
    "open_run",
    "refuse_unrunnable",
    "run_until_idle",
    "step_once",
]


async def open_run(engine: Engine, acquired: Acquired, *, need_flow: bool = True) -> Run | None:
    """See ``Engine.open_run``."""
    if acquired.lease is None:
        return None
    execution = acquired.execution
    try:
        flow = await engine.get_flow(execution.flow_id, execution.flow_version)
    except errors.FlowNotFound:
        run = _blind_run(engine, acquired)
        if need_flow:
            # This process cannot run a step of it; another one may: give it back as it
            # was (never fail it for what this process lacks).
            await give_back(engine, run, recovered=acquired.recovered)
            raise
    except BaseException:
        await engine.store.release(acquired.lease)
        raise
    else:
        run = Run(engine, execution, acquired.lease, flow)
    if acquired.recovered:
        timers.note_recovery(run)
    return run


def _blind_run(engine: Engine, acquired: Acquired) -> Run:
    """A run over an empty placeholder flow (``flow_known`` False)."""
    execution = acquired.execution
    assert acquired.lease is not None
    placeholder = Flow(
        id=execution.flow_id, version=execution.flow_version, initial_step_id="", steps={}
    )
    run = Run(engine, execution, acquired.lease, placeholder)
    run.flow_known = False
    return run


async def give_back_acquired(engine: Engine, acquired: Acquired) -> None:
    """See ``Engine.give_back``."""
    if acquired.lease is not None:
        await give_back(engine, _blind_run(engine, acquired), recovered=acquired.recovered)


async def give_back(engine: Engine, run: Run, *, recovered: bool) -> None:
    """Return an execution this process leased but cannot run, leaving it as it was.

    A run taken over from a crashed holder keeps its ``running`` status under an expired
    lease (so whoever takes it next counts the new run); one this acquisition made
    ``running`` goes back to ``pending`` (and unstarted if it never ran a step).
    """
    execution = run.execution
    if recovered:
        with contextlib.suppress(errors.LeaseLost):
            await engine.store.heartbeat(run.lease, now=engine.clock.now(), lease_for=_EXPIRED)
        run.released = True
        return
    if execution.status is ExecutionStatus.RUNNING and execution.step_count == 0:
        execution.started_at = None
    await release_untouched(engine, run)


_EXPIRED = timedelta(0)


async def refuse_unrunnable(engine: Engine, run: Run) -> None:
    """Raise ``HandlerNotFound`` (giving the execution back untouched) when a step it is
    about to run has no handler in this process: another process may have it."""
    for token in run.execution.tokens:
        if token.status is not TokenStatus.ACTIVE or token.step_id is None:
            continue
        step = run.flow.steps.get(token.step_id)
        if step is None or step.type in TOKEN_MOVES:
            continue
        if engine.resolve_handler(step) is None:
            await give_back(engine, run, recovered=False)
            raise errors.HandlerNotFound(step.type)


async def step_once(engine: Engine, execution_id: str) -> StepResult:
    """See ``Engine.step``."""
    acquired = await engine.acquire(execution_id)
    run = await engine.open_run(acquired)
    if run is None:
        ex = acquired.execution
        return StepResult(
            step_id=None, outcome=None, next_step_id=None, status=ex.status, execution=ex
        )
    outcome: list[tuple[str | None, str | None, str | None]] = []
    result = await engine.drive(run, max_steps=1, record=outcome, check_handlers=True)
    step_id, kind, next_id = outcome[0] if outcome else (None, None, None)
    return StepResult(
        step_id=step_id,
        outcome=kind,
        next_step_id=next_id,
        status=result.status,
        execution=result.execution,
    )


async def drive(
    engine: Engine,
    run: Run,
    *,
    max_steps: int | None = None,
    record: list[tuple[str | None, str | None, str | None]] | None = None,
    stop: asyncio.Event | None = None,
    check_handlers: bool = False,
) -> RunResult:
    """See ``Engine.drive``."""
    execution = run.execution
    engine._inflight[execution.id] = run
    engine._leases.ensure_running()
    steps = 0
    waiting = ExecutionStatus.WAITING
    try:
        await timers.apply_due(engine, run)
        if check_handlers and not run.released:
            await refuse_unrunnable(engine, run)
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
                from flowmonkey.engine.parallel import run_branches

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
        if engine._inflight.get(execution.id) is run:
            del engine._inflight[execution.id]
    return RunResult.of(execution)


async def run_until_idle(engine: Engine, *, max_rounds: int) -> int:
    """See ``Engine.run_until_idle``."""
    await engine._ensure_ready()
    # Claim only what this process can run (flows saved by other processes included):
    # the rest stays untouched for a process that has its flow and handlers.
    await engine.load_flows_from_store()
    driven = 0
    for _ in range(max_rounds):
        await engine.tick_timers()
        claimed = await engine.store.claim(
            owner=engine.owner,
            now=engine.clock.now(),
            lease_for=engine.options.lease_for,
            limit=100,
            flows=engine.runnable_flows(),
        )
        if not claimed:
            return driven
        for acquired in claimed:
            try:
                run = await engine.open_run(acquired)
                if run is not None:
                    await engine.drive(run, check_handlers=True)
                    driven += 1
            except (errors.FlowNotFound, errors.HandlerNotFound):
                continue  # left as it was for a process that has what it needs
    return driven

"""The run loop: wrap a granted lease in a ``Run`` and step it until it stops."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from flowmonkey import errors
from flowmonkey.engine import timers
from flowmonkey.engine.branches import run_branches
from flowmonkey.engine.leasing import acquire, give_back, open_run, poisoned
from flowmonkey.engine.lookup import (
    TOKEN_MOVES,
    load_flows_from_store,
    resolve_handler,
    runnable_flows,
)
from flowmonkey.engine.recording import CommitFailed
from flowmonkey.engine.result_check import invalid
from flowmonkey.engine.results import RunResult, StepResult
from flowmonkey.engine.step import StepCancelled, apply_result, execute_step
from flowmonkey.engine.transitions import fail_execution
from flowmonkey.model.execution import ExecutionStatus, TokenStatus

if TYPE_CHECKING:
    from flowmonkey.engine.run import Run
    from flowmonkey.engine.runtime import Runtime

__all__ = ["drive", "record_unrecordable", "refuse_unrunnable", "run_until_idle", "step_once"]

log = logging.getLogger("flowmonkey.engine")


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
    result = await drive(engine, run, max_steps=1, record=outcome, check_handlers=True)
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
    check_handlers: bool = False,
) -> RunResult:
    """See ``Engine.drive``."""
    execution = run.execution
    engine.inflight[execution.id] = run
    engine.leases.ensure_running()
    steps = 0
    waiting = ExecutionStatus.WAITING
    try:
        await timers.apply_due(engine, run)
        if check_handlers and not run.released:
            await refuse_unrunnable(engine, run)
        await _fail_if_poisoned(run)
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
                try:
                    await run_branches(engine, run)
                except (CommitFailed, StepCancelled):
                    if run.failed_commit is None:
                        raise  # a real cancellation
                if run.failed_commit is not None:
                    # A branch's commit failed (the others were stopped, and the run
                    # may look finished in memory): record it from the stored state.
                    await record_unrecordable(engine, run, run.failed_commit)
                steps += 1
                continue
            step_id = token.step_id
            try:
                kind, next_id = await execute_step(engine, run, token)
            except CommitFailed as failed:
                await record_unrecordable(engine, run, failed)
                kind, next_id = "failure", None
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
            if not engine.inflight:
                engine.run_ended()
    return RunResult.of(execution)


async def refuse_unrunnable(engine: Runtime, run: Run) -> None:
    """Raise ``HandlerNotFound`` (giving the execution back untouched) when a step it is
    about to run has no handler in this process: another process may have it."""
    for token in run.execution.tokens:
        if token.status is not TokenStatus.ACTIVE or token.step_id is None:
            continue
        step = run.flow.steps.get(token.step_id)
        if step is None or step.type in TOKEN_MOVES:
            continue
        if resolve_handler(engine, step) is None:
            await give_back(engine, run, recovered=False)
            raise errors.HandlerNotFound(step.type)


async def _fail_if_poisoned(run: Run) -> None:
    """The last line of defence: a step re-claimed ``max_step_recoveries`` times without
    ever committing (its handler crashes the process, or its outcome can never be
    written) fails the execution with ``POISONED_STEP`` instead of running again."""
    token = poisoned(run)
    if token is None:
        return
    limit = run.engine.options.max_step_recoveries
    await fail_execution(
        run,
        "POISONED_STEP",
        f'step "{token.step_id}" was re-claimed {token.recoveries} times without its '
        f"outcome ever being recorded (limit {limit}); it is not run again",
        step_id=token.step_id,
        details={"recoveries": token.recoveries, "run_number": run.execution.run_number},
    )


async def record_unrecordable(engine: Runtime, run: Run, failed: CommitFailed) -> None:
    """The commit of a step failed because of what it held: reload the execution as last
    committed and record the step as a non-retryable ``INVALID_RESULT`` failure, which
    follows the step's usual failure route (``onFailure``, else the execution fails).

    Raises:
        ExecutionNotFound: the execution vanished.
        Whatever the second commit raises (the error then escapes as it used to, and
        ``POISONED_STEP`` bounds the re-runs).
    """
    execution = run.execution
    stored = await engine.store.get(execution.id)
    if stored is None:
        raise errors.ExecutionNotFound(execution.id) from None
    run.reload(stored)  # also clears run.failed_commit
    token = next(
        (
            t
            for t in execution.tokens
            if t.id == failed.token_id
            and t.status is TokenStatus.ACTIVE
            and t.step_id == failed.step_id
        ),
        None,
    )
    step = run.flow.steps.get(failed.step_id)
    if token is None or step is None or execution.status.is_terminal:
        return  # nothing of that step is pending any more
    log.warning(
        'the outcome of step "%s" of %s could not be recorded; it fails with INVALID_RESULT: %s',
        failed.step_id, execution.id, failed.cause,
        extra={"execution_id": execution.id, "step": failed.step_id},
    )  # fmt: skip
    message = f"the step's outcome could not be recorded: {failed.cause}"
    await apply_result(
        engine, run, token, step, invalid(message), False, timedelta(0), failed.started,
        failed.attempt, None,
    )  # fmt: skip


async def run_until_idle(engine: Runtime, *, max_rounds: int) -> int:
    """See ``Engine.run_until_idle``."""
    # Claim only what this process can run (flows saved by other processes included):
    # the rest stays untouched for a process that has its flow and handlers.
    await load_flows_from_store(engine, strict=False)
    driven = 0
    for _ in range(max_rounds):
        await timers.tick_timers(engine, limit=1000)
        claimed = await engine.store.claim(
            owner=engine.owner,
            now=engine.clock.now(),
            lease_for=engine.options.lease_for,
            limit=100,
            flows=runnable_flows(engine),
        )
        if not claimed:
            return driven
        for acquired in claimed:
            try:
                run = await open_run(engine, acquired)
                if run is not None:
                    await drive(engine, run, check_handlers=True)
                    driven += 1
            except (errors.FlowNotFound, errors.HandlerNotFound):
                continue  # left as it was for a process that has what it needs
    return driven

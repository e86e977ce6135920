"""Due work and recovery: execution and wait timeouts, timer/retry wakes, waking a
parent whose children ended, and picking up stale runs."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.engine.builtins import children_of_visit, task_id_for
from flowmonkey.engine.leasing import acquire, open_run, recover, release_untouched
from flowmonkey.engine.terminal import note_cancelled_tasks, run_hooks, terminal_cleanup
from flowmonkey.engine.transitions import complete_if_done, move_after_wait, settle_status
from flowmonkey.model.execution import (
    Cancellation,
    ErrorInfo,
    Execution,
    ExecutionStatus,
    Token,
    TokenStatus,
)

if TYPE_CHECKING:
    from flowmonkey.engine.run import Run
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.model.flow import Step

__all__ = ["after_terminal", "apply_due", "recover_stale", "tick_timers", "wake_parent"]

log = logging.getLogger("flowmonkey.engine")

_PENDING = ExecutionStatus.PENDING
_RUNNING = ExecutionStatus.RUNNING
_WAITING = TokenStatus.WAITING
_ACTIVE = TokenStatus.ACTIVE


async def _due_changes(engine: Runtime, run: Run) -> bool:
    """Apply due timeouts and wakes to the working copy. Returns True if anything changed.

    Order matters: an expired execution deadline wins over everything; a wait deadline
    wins over a wake that is due at the same time.
    """
    execution = run.execution
    if execution.status.is_terminal:
        return False
    now = engine.clock.now()
    if execution.deadline_at is not None and execution.deadline_at <= now:
        info = ErrorInfo(
            code="TIMEOUT",
            message="execution timed out",
            step_id=execution.current_step_id,
            at=now,
        )
        execution.cancellation = Cancellation(
            source="timeout", reason="execution timed out", at=now
        )
        await note_cancelled_tasks(engine, run, now, "execution timed out")
        run.finish(ExecutionStatus.CANCELLED, now, info)
        run.emit("execution.cancelled", now, {"source": "timeout", "reason": "execution timed out"})
        return True
    if not run.flow_known:
        _refuse_blind_waits(run, now)
    changed = False
    for token in list(execution.tokens):
        if token.status is not _WAITING or token.wait_kind == "join":
            continue
        step = run.waiting_step(token)
        if (
            token.wait_kind != "retry"
            and token.wait_deadline_at is not None
            and token.wait_deadline_at <= now
        ):
            changed = True
            if await _wait_timed_out(engine, run, token, step, now):
                return True
        elif token.wake_at is not None and token.wake_at <= now:
            changed = True
            kind = token.wait_kind
            step_id = token.step_id
            scheduled = token.wake_at
            ended = move_after_wait(step, token, execution.step_count, run)
            if kind == "timer":
                run.emit("timer.fired", now, {"step_id": step_id})
                if step is not None and step.type == "delay" and step.output_key:
                    run.write(
                        step.output_key,
                        {"scheduledFor": scheduled.isoformat(), "firedAt": now.isoformat()},
                    )
            run.emit("execution.resumed", now, {"step_id": step_id, "reason": kind or "wake"})
            if ended and complete_if_done(run, now):
                return True
    if changed and not execution.status.is_terminal:
        settle_status(execution)
    return changed


def _refuse_blind_waits(run: Run, now: Any) -> None:
    """Without the flow, a due wait is applied from what it recorded (``wait_step``); a
    wait that recorded nothing (it began before waits did) needs the flow: raise
    ``FlowNotFound`` so that nothing changes here."""
    for token in run.execution.tokens:
        if (
            token.status is _WAITING
            and token.wait_step is None
            and token.wait_kind not in ("join", "retry", "child")
            and any(at is not None and at <= now for at in (token.wake_at, token.wait_deadline_at))
        ):
            execution = run.execution
            raise errors.FlowNotFound(execution.flow_id, execution.flow_version)


async def _wait_timed_out(
    engine: Runtime, run: Run, token: Token, step: Step | None, now: Any
) -> bool:
    """Follow ``onTimeout`` or fail with ``TIMEOUT``; True when the execution ended."""
    step_id = token.step_id
    if step_id is not None:
        run.revoke_steps.append(step_id)
    run.emit("step.timeout", now, {"step_id": step_id, "kind": "wait"})
    if step is not None and step.type == "userTask":
        task = await engine.store.get_task(task_id_for(run.execution.id, step.id, token.visit))
        if task is not None and task.status == "pending":
            task.status = "expired"
            run.tasks.append(task)
            run.emit(
                "task.cancelled", now, {"task_id": task.id, "step_id": step.id, "reason": "expired"}
            )
    target = step.transitions.on_timeout if step is not None else None
    token.status = _ACTIVE
    token.wake_at = token.wait_reason = token.wait_kind = None
    token.wait_started_at = token.wait_deadline_at = None
    token.wait_step = None
    if target is not None and run.has_step(target):
        token.step_id = target
        token.visit = run.execution.step_count
        run.emit(
            "transition", now, {"from_step_id": step_id, "to_step_id": target, "outcome": "timeout"}
        )
        return False
    info = ErrorInfo(
        code="TIMEOUT", message=f'wait at step "{step_id}" timed out', step_id=step_id, at=now
    )
    run.execution.last_error = info
    run.finish(ExecutionStatus.FAILED, now, info)
    run.emit("execution.failed", now, {"step_id": step_id, "error": info.to_dict()})
    return True


async def apply_due(engine: Runtime, run: Run, *, for_tick: bool = False) -> bool:
    """Apply due work to a leased execution and commit it (``tick_timers`` releases)."""
    if not await _due_changes(engine, run):
        return False
    execution = run.execution
    if execution.status.is_terminal:
        await run.commit(release=True)
        await terminal_cleanup(engine, execution)
    elif for_tick:
        if execution.status is _RUNNING:
            execution.status = _PENDING
        await run.commit(release=True)
        if execution.status is _PENDING:
            await engine.notify_runnable(execution.id)
    else:
        await run.commit()
    return True


async def _open(engine: Runtime, execution_id: str, *, steal: bool = False) -> Run | None:
    acquired = await acquire(engine, execution_id, steal=steal, start=False)
    return await open_run(engine, acquired, need_flow=False)


async def tick_timers(engine: Runtime, *, limit: int) -> list[str]:
    """See ``Engine.tick_timers``."""
    applied = []
    for execution_id in await engine.store.due(now=engine.clock.now(), limit=limit):
        run = await _open(engine, execution_id)
        if run is None:
            continue
        try:
            if await apply_due(engine, run, for_tick=True):
                applied.append(execution_id)
        except errors.FlowNotFound:
            continue  # left for a process that has the flow (released below)
        finally:
            await release_untouched(engine, run)
    return applied


async def recover_stale(engine: Runtime) -> list[str]:
    """See ``Engine.recover_stale``."""
    now = engine.clock.now()
    ids = await engine.store.stale(
        now=now, updated_before=now - engine.options.stale_after, limit=1000
    )
    recovered = []
    for execution_id in ids:
        acquired = await acquire(engine, execution_id)
        run = await open_run(engine, acquired, need_flow=False)
        if run is None:
            continue
        # open_run already counted the new run when the lease had expired; an
        # unleased stale row (no lease to expire) is counted here.
        if not acquired.recovered:
            await recover(run)
        if run.execution.status is _RUNNING:
            run.execution.status = _PENDING
        await run.commit(release=True)
        await engine.notify_runnable(execution_id)
        recovered.append(execution_id)
    return recovered


async def wake_parent(engine: Runtime, parent_id: str, step_id: str, visit: int) -> None:
    """Make a parent waiting for children at ``step_id`` runnable once they all ended."""
    children = await children_of_visit(engine, parent_id, step_id, visit)
    if any(not c.status.is_terminal for c in children):
        return
    acquired = await acquire(engine, parent_id, start=False)
    for attempt in range(40):
        if attempt:
            acquired = await acquire(engine, parent_id, start=False)
        if acquired.lease is not None or acquired.execution.status.is_terminal:
            break
        # Busy: usually the parent itself is committing its wait; it re-checks after.
        await asyncio.sleep(min(0.005 * (attempt + 1), 0.05))
    run = await open_run(engine, acquired, need_flow=False)
    if run is None:
        return
    try:
        token = next(
            (
                t
                for t in run.execution.tokens
                if t.status is _WAITING
                and t.step_id == step_id
                and t.wait_kind == "child"
                and t.visit == visit
            ),
            None,
        )
        if token is None:
            return
        now = engine.clock.now()
        move_after_wait(run.waiting_step(token), token, run.execution.step_count)
        run.emit("execution.resumed", now, {"step_id": step_id, "reason": "children"})
        settle_status(run.execution)
        if run.execution.status is _RUNNING:
            run.execution.status = _PENDING
        await run.commit(release=True)
        await engine.notify_runnable(parent_id)
    finally:
        await release_untouched(engine, run)


async def after_terminal(engine: Runtime, execution: Execution) -> None:
    """What follows a terminal commit (``Runtime.after_terminal``): wake a waiting parent,
    then run lifecycle hooks (errors are reported to the log and ``"error"`` listeners,
    never raised)."""
    if execution.parent_execution_id is not None and execution.parent_step_id is not None:
        try:
            await wake_parent(
                engine,
                execution.parent_execution_id,
                execution.parent_step_id,
                int(execution.metadata.get("parent_visit", 0)),
            )
        except Exception:
            log.exception("waking the parent of %s failed; its poll will notice", execution.id)
    await run_hooks(engine, execution)

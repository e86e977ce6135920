"""Operations that change an execution from outside a step: due timers, resume,
signals, user tasks, cancel, fail, recovery, lifecycle hooks."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.engine.builtins import task_id_for
from flowmonkey.engine.limits import OutputError
from flowmonkey.engine.results import CancelResult, RunResult
from flowmonkey.engine.run import Run, hash_token
from flowmonkey.engine.step import advance, complete_if_done, move_after_wait
from flowmonkey.model.events import Event
from flowmonkey.model.execution import (
    Cancellation,
    ErrorInfo,
    Execution,
    ExecutionStatus,
    Token,
    TokenStatus,
)
from flowmonkey.stores.base import TaskQuery

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine
    from flowmonkey.model.flow import Step
    from flowmonkey.model.records import Task

__all__ = [
    "after_terminal",
    "apply_due",
    "cancel",
    "complete_task",
    "fail",
    "recover_stale",
    "resume",
    "resume_by_token",
    "signal",
    "tick_timers",
]

_PENDING = ExecutionStatus.PENDING
_RUNNING = ExecutionStatus.RUNNING
_WAITING_S = ExecutionStatus.WAITING
_WAITING = TokenStatus.WAITING
_ACTIVE = TokenStatus.ACTIVE


async def _due_changes(engine: Engine, run: Run) -> bool:
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
        await _note_cancelled_tasks(engine, run, now, "execution timed out")
        run.finish(ExecutionStatus.CANCELLED, now, info)
        run.emit("execution.cancelled", now, {"source": "timeout", "reason": "execution timed out"})
        return True
    changed = False
    for token in list(execution.tokens):
        if token.status is not _WAITING or token.wait_kind == "join":
            continue
        step = run.flow.steps.get(token.step_id) if token.step_id else None
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
        _settle_status(execution)
    return changed


async def _wait_timed_out(
    engine: Engine, run: Run, token: Token, step: Step | None, now: Any
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
    if target is not None and target in run.flow.steps:
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


def _settle_status(execution: Execution) -> None:
    tokens = execution.tokens
    if any(t.status is _ACTIVE for t in tokens):
        execution.status = _RUNNING
    elif any(t.status is _WAITING for t in tokens):
        execution.status = _WAITING_S


async def apply_due(engine: Engine, run: Run, *, for_tick: bool = False) -> bool:
    """Apply due work to a leased execution and commit it (``tick_timers`` releases)."""
    if not await _due_changes(engine, run):
        return False
    execution = run.execution
    if execution.status.is_terminal:
        await run.commit(release=True)
        await _terminal_cleanup(engine, execution)
    elif for_tick:
        if execution.status is _RUNNING:
            execution.status = _PENDING
        await run.commit(release=True)
        if execution.status is _PENDING:
            await engine.notify_runnable(execution.id)
    else:
        await run.commit()
    return True


async def _terminal_cleanup(engine: Engine, execution: Execution) -> None:
    if execution.status is ExecutionStatus.CANCELLED or execution.status is ExecutionStatus.FAILED:
        await _cancel_children(engine, execution.id)
    await engine.after_terminal(execution)


async def _cancel_children(engine: Engine, execution_id: str) -> int:
    count = 0
    for child in await engine.store.find_children(execution_id):
        if child.status.is_terminal:
            continue
        result = await cancel(engine, child.id, source="parent", reason="parent ended")
        count += int(result.cancelled)
    return count


async def _open(engine: Engine, execution_id: str, *, steal: bool = False) -> Run | None:
    acquired = await engine.acquire(execution_id, steal=steal, start=False)
    return await engine.open_run(acquired)


async def _release(engine: Engine, run: Run) -> None:
    """Give the lease back without doing anything; a ``running`` execution (acquiring made
    a pending one running) is left ``pending`` so it stays runnable for anyone."""
    if run.released:
        return
    if run.execution.status is _RUNNING:
        run.execution.status = _PENDING
        await run.commit(release=True)
        await engine.notify_runnable(run.execution.id)
    else:
        await engine.store.release(run.lease)
        run.released = True


def _waiting_token(run: Run, step_id: str | None) -> Token | None:
    for token in run.execution.tokens:
        if token.status is _WAITING and (step_id is None or token.step_id == step_id):
            return token
    return None


async def _open_waiting(engine: Engine, execution_id: str) -> Run:
    """Lease a waiting execution (after applying due work) or raise ExecutionNotWaiting."""
    acquired = await engine.acquire(execution_id, start=False)
    run = await engine.open_run(acquired)
    if run is None:
        status = acquired.execution.status
        raise errors.ExecutionNotWaiting(execution_id, str(status))
    await apply_due(engine, run)
    if run.execution.status is not _WAITING_S:
        await _release(engine, run)
        raise errors.ExecutionNotWaiting(execution_id, str(run.execution.status))
    return run


async def resume(
    engine: Engine, execution_id: str, data: Any, *, token: str | None, run_next: bool = True
) -> RunResult:
    """See ``Engine.resume``."""
    token_hash = None
    if token is not None:
        token_hash = await _check_token(engine, token, execution_id)
    run = await _open_waiting(engine, execution_id)
    try:
        if token_hash is not None:
            record = await engine.store.get_resume_token(token_hash)
            assert record is not None
            waiting = _waiting_token(run, record.step_id)
            if waiting is None:
                raise errors.InvalidResumeToken(
                    f'the execution is not waiting at step "{record.step_id}"'
                )
        else:
            waiting = _waiting_token(run, None)
        assert waiting is not None
        step = run.flow.steps.get(waiting.step_id) if waiting.step_id else None
        now = engine.clock.now()
        if data is not None:
            _write_payload(run, "resumeData", data, literal=True)
            if step is not None and step.output_key:
                _write_payload(run, step.output_key, data)
        step_id = waiting.step_id
        ended = move_after_wait(step, waiting, run.execution.step_count, run)
        run.use_token = token_hash
        run.emit("execution.resumed", now, {"step_id": step_id, "reason": "resume"})
        if ended and complete_if_done(run, now):
            await run.commit(release=True)
            await engine.after_terminal(run.execution)
            return RunResult.of(run.execution)
        _settle_status(run.execution)
        if not run_next:
            return await _hand_off(engine, run)
        await run.commit()
    except BaseException:
        await _release(engine, run)
        raise
    return await engine.drive(run)


async def _hand_off(engine: Engine, run: Run) -> RunResult:
    """Commit the resume/signal and leave the execution runnable for a worker: one
    transaction, and the wake-up goes to whichever worker claims it first."""
    execution = run.execution
    if execution.status is _RUNNING:
        execution.status = _PENDING
    await run.commit(release=True)
    if execution.status is _PENDING:
        await engine.notify_runnable(execution.id)
    return RunResult.of(execution)


def _write_payload(run: Run, path: str, value: Any, *, literal: bool = False) -> None:
    try:
        run.write(path, value, literal=literal)
    except OutputError as exc:
        raise ValueError(str(exc)) from None


async def _check_token(engine: Engine, token: str, execution_id: str | None) -> str:
    token_hash = hash_token(token)
    record = await engine.store.get_resume_token(token_hash)
    if record is None:
        raise errors.InvalidResumeToken("unknown token")
    if execution_id is not None and record.execution_id != execution_id:
        raise errors.InvalidResumeToken("the token belongs to another execution")
    if record.status != "active":
        raise errors.InvalidResumeToken(f"the token is {record.status}")
    if record.expires_at is not None and record.expires_at <= engine.clock.now():
        raise errors.ResumeTokenExpired()
    return token_hash


async def resume_by_token(
    engine: Engine, token: str, data: Any, *, run_next: bool = True
) -> RunResult:
    """See ``Engine.resume_by_token``."""
    record = await engine.store.get_resume_token(hash_token(token))
    if record is None:
        raise errors.InvalidResumeToken("unknown token")
    return await resume(engine, record.execution_id, data, token=token, run_next=run_next)


async def signal(
    engine: Engine,
    execution_id: str,
    step_id: str,
    *,
    port: str | None,
    payload: Any,
    task: Task | None = None,
    run_next: bool = True,
) -> RunResult:
    """See ``Engine.signal``; ``task`` marks a user task completed in the same commit."""
    try:
        run = await _open_waiting(engine, execution_id)
    except errors.ExecutionNotWaiting as exc:
        raise errors.InvalidSignal(
            f'Execution "{execution_id}" is not waiting at step "{step_id}" (status: {exc.status})'
        ) from None
    try:
        waiting = _waiting_token(run, step_id)
        if waiting is None or waiting.wait_kind == "retry":
            raise errors.InvalidSignal(
                f'Execution "{execution_id}" is not waiting at step "{step_id}"'
            )
        step = run.flow.steps.get(step_id)
        if step is None:
            raise errors.InvalidSignal(f'Step "{step_id}" does not exist in the flow')
        if port is not None and port not in step.transitions.ports:
            raise errors.InvalidSignal(f'Step "{step_id}" has no port "{port}"')
        now = engine.clock.now()
        if task is None and step.type == "userTask":
            task = await engine.store.get_task(
                task_id_for(run.execution.id, step.id, waiting.visit)
            )
            if task is not None and task.status != "pending":
                task = None
            if task is not None and task.form:
                problems = form_problems(task.form, payload)
                if problems:
                    raise errors.InvalidSignal(
                        "payload does not match the task form: "
                        + "; ".join(f"{p['path']}: {p['message']}" for p in problems),
                    )
        if payload is not None:
            if step.output_key:
                _write_payload(run, step.output_key, payload)
            else:
                _write_payload(run, step_id, payload, literal=True)
        if task is not None:
            task.status = "completed"
            task.output = payload
            task.completed_at = now
            run.tasks.append(task)
            run.emit(
                "task.completed",
                now,
                {
                    "task_id": task.id,
                    "step_id": step_id,
                    "completed_by": task.completed_by,
                    "port": port,
                },
            )
        run.emit("signal.received", now, {"step_id": step_id, "port": port})
        run.revoke_steps.append(step_id)
        waiting.status = _ACTIVE
        waiting.wake_at = waiting.wait_reason = waiting.wait_kind = None
        waiting.wait_started_at = waiting.wait_deadline_at = None
        run.emit("execution.resumed", now, {"step_id": step_id, "reason": "signal"})
        if port is not None:
            target: str | None = step.transitions.ports[port]
            run.execution.status = _RUNNING
            await advance(engine, run, waiting, step, target, "success", now,
                          hand_off=not run_next)  # fmt: skip
            if not run_next:
                return RunResult.of(run.execution)
        else:
            waiting.status = _WAITING
            waiting.wait_kind = "signal"
            ended = move_after_wait(step, waiting, run.execution.step_count, run)
            if ended and complete_if_done(run, now):
                await run.commit(release=True)
                await engine.after_terminal(run.execution)
                return RunResult.of(run.execution)
            _settle_status(run.execution)
            if not run_next:
                return await _hand_off(engine, run)
            await run.commit()
    except BaseException:
        await _release(engine, run)
        raise
    return await engine.drive(run)


async def complete_task(
    engine: Engine,
    task_id: str,
    *,
    port: str | None,
    output: Any,
    user_id: str | None,
    run_next: bool = True,
) -> RunResult:
    """See ``Engine.complete_task``."""
    task = await engine.store.get_task(task_id)
    if task is None:
        raise errors.TaskNotFound(task_id)
    if task.status != "pending":
        raise errors.InvalidSignal(f'Task "{task_id}" is {task.status}, not pending')
    if task.form:
        problems = form_problems(task.form, output)
        if problems:
            raise errors.FlowMonkeyError(
                "task output does not match its form: "
                + "; ".join(f"{p['path']}: {p['message']}" for p in problems),
                code="INPUT_VALIDATION_FAILED",
                details=problems,
            )
    task.completed_by = user_id
    return await signal(
        engine,
        task.execution_id,
        task.step_id,
        port=port,
        payload=output,
        task=task,
        run_next=run_next,
    )


def form_problems(form: dict[str, Any], output: Any) -> list[dict[str, str]]:
    """Every way ``output`` breaks the task's JSON-Schema ``form``."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(form)
    validator = validator_cls(form)
    out = []
    for err in sorted(validator.iter_errors(output), key=lambda e: list(e.path)):
        path = ".".join(str(p) for p in err.path) or "(root)"
        out.append({"path": path, "message": err.message})
    return out


async def cancel(
    engine: Engine, execution_id: str, *, source: str, reason: str | None
) -> CancelResult:
    """See ``Engine.cancel``: one commit under a stolen lease, then the children."""
    acquired = await engine.acquire(execution_id, steal=True, start=False)
    previous = acquired.execution.status
    run = await engine.open_run(acquired)
    if run is None:
        return CancelResult(
            cancelled=False,
            execution=acquired.execution,
            previous_status=previous,
            error=f"execution is already {previous}",
        )
    now = engine.clock.now()
    execution = run.execution
    execution.cancellation = Cancellation(source=source, reason=reason, at=now)
    await _note_cancelled_tasks(engine, run, now, reason or "execution cancelled")
    run.finish(ExecutionStatus.CANCELLED, now, None)
    run.emit("execution.cancelled", now, {"source": source, "reason": reason})
    await run.commit(release=True)
    engine.request_cancel(execution_id)
    children = await _cancel_children(engine, execution_id)
    await engine.after_terminal(execution)
    return CancelResult(
        cancelled=True,
        execution=execution,
        previous_status=previous,
        children_cancelled=children,
    )


async def fail(
    engine: Engine, execution_id: str, *, message: str, step_id: str | None, code: str
) -> RunResult:
    """See ``Engine.fail``."""
    acquired = await engine.acquire(execution_id, steal=True, start=False)
    run = await engine.open_run(acquired)
    if run is None:
        raise errors.ExecutionTerminal(execution_id, str(acquired.execution.status))
    now = engine.clock.now()
    execution = run.execution
    info = ErrorInfo(
        code=code, message=message, step_id=step_id or execution.current_step_id, at=now
    )
    await _note_cancelled_tasks(engine, run, now, "execution failed")
    run.finish(ExecutionStatus.FAILED, now, info)
    run.emit("execution.failed", now, {"step_id": info.step_id, "error": info.to_dict()})
    await run.commit(release=True)
    engine.request_cancel(execution_id)
    await _cancel_children(engine, execution_id)
    await engine.after_terminal(execution)
    return RunResult.of(execution)


async def tick_timers(engine: Engine, *, limit: int) -> list[str]:
    """See ``Engine.tick_timers``."""
    applied = []
    for execution_id in await engine.store.due(now=engine.clock.now(), limit=limit):
        run = await _open(engine, execution_id)
        if run is None:
            continue
        try:
            if await apply_due(engine, run, for_tick=True):
                applied.append(execution_id)
        finally:
            await _release(engine, run)
    return applied


async def recover_stale(engine: Engine) -> list[str]:
    """See ``Engine.recover_stale``."""
    now = engine.clock.now()
    ids = await engine.store.stale(
        now=now, updated_before=now - engine.options.stale_after, limit=1000
    )
    recovered = []
    for execution_id in ids:
        acquired = await engine.acquire(execution_id)
        run = await engine.open_run(acquired)
        if run is None:
            continue
        # open_run already counted the new run when the lease had expired; an
        # unleased stale row (no lease to expire) is counted here.
        if not acquired.recovered:
            note_recovery(run)
        if run.execution.status is _RUNNING:
            run.execution.status = _PENDING
        await run.commit(release=True)
        await engine.notify_runnable(execution_id)
        recovered.append(execution_id)
    return recovered


def note_recovery(run: Run) -> None:
    """A crashed or stalled run is picked up again: ``run_number += 1``."""
    execution = run.execution
    execution.run_number += 1
    run.emit(
        "execution.recovered",
        run.engine.clock.now(),
        {"run_number": execution.run_number, "step_id": execution.current_step_id},
    )


async def after_terminal(engine: Engine, execution: Execution) -> None:
    """Lifecycle hooks after the terminal commit; errors never undo it."""
    hooks = engine._hooks.get(execution.flow_id)
    if not hooks:
        return
    name = {
        ExecutionStatus.COMPLETED: "on_complete",
        ExecutionStatus.FAILED: "on_fail",
        ExecutionStatus.CANCELLED: "on_cancel",
    }.get(execution.status)
    if name is None:
        return
    from flowmonkey.engine.engine import call_maybe_async

    for hook in hooks.get(name, ()):
        try:
            await call_maybe_async(hook, execution)
        except Exception as exc:
            import logging

            logging.getLogger("flowmonkey.engine").exception(
                "%s hook for %s failed", name, execution.id
            )
            engine.bus.emit(
                [
                    Event(
                        "error",
                        execution.id,
                        engine.clock.now(),
                        {"execution_id": execution.id, "hook": name, "error": str(exc)},
                    )
                ]
            )


async def _note_cancelled_tasks(engine: Engine, run: Run, now: Any, reason: str) -> None:
    """Emit ``task.cancelled`` for the pending tasks that ``finish`` is about to cancel."""
    pending = await engine.store.list_tasks(
        TaskQuery(execution_id=run.execution.id, status="pending", limit=10_000)
    )
    for task in pending:
        run.emit(
            "task.cancelled", now, {"task_id": task.id, "step_id": task.step_id, "reason": reason}
        )


async def wake_parent(engine: Engine, parent_id: str, step_id: str, visit: int) -> None:
    """Make a parent waiting for children at ``step_id`` runnable once they all ended."""
    from flowmonkey.engine.builtins import children_of_visit

    children = await children_of_visit(engine, parent_id, step_id, visit)
    if any(not c.status.is_terminal for c in children):
        return
    acquired = await engine.acquire(parent_id, start=False)
    for attempt in range(40):
        if attempt:
            acquired = await engine.acquire(parent_id, start=False)
        if acquired.lease is not None or acquired.execution.status.is_terminal:
            break
        # Busy: usually the parent itself is committing its wait; it re-checks after.
        await asyncio.sleep(min(0.005 * (attempt + 1), 0.05))
    run = await engine.open_run(acquired)
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
        move_after_wait(run.flow.steps.get(step_id), token, run.execution.step_count)
        run.emit("execution.resumed", now, {"step_id": step_id, "reason": "children"})
        _settle_status(run.execution)
        if run.execution.status is _RUNNING:
            run.execution.status = _PENDING
        await run.commit(release=True)
        await engine.notify_runnable(parent_id)
    finally:
        await _release(engine, run)

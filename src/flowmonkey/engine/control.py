"""Operations that hand data to a waiting execution from outside a step: resume (by id
or token), signals and user tasks. Due work lives in ``timers``, cancel/fail and the
after-terminal work in ``terminal`` and ``timers``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.engine.builtins import task_id_for
from flowmonkey.engine.driving import drive
from flowmonkey.engine.leasing import acquire, open_run, release_untouched
from flowmonkey.engine.limits import OutputError
from flowmonkey.engine.lookup import TOKEN_MOVES, resolve_handler
from flowmonkey.engine.parallel import advance
from flowmonkey.engine.results import RunResult
from flowmonkey.engine.run import Run, hash_token
from flowmonkey.engine.timers import apply_due
from flowmonkey.engine.transitions import complete_if_done, move_after_wait, settle_status
from flowmonkey.model.execution import ExecutionStatus, Token, TokenStatus

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.model.flow import Step
    from flowmonkey.model.records import Task

__all__ = ["complete_task", "resume", "resume_by_token", "signal"]

_PENDING = ExecutionStatus.PENDING
_RUNNING = ExecutionStatus.RUNNING
_WAITING_S = ExecutionStatus.WAITING
_WAITING = TokenStatus.WAITING
_ACTIVE = TokenStatus.ACTIVE


def _waiting_token(run: Run, step_id: str | None) -> Token | None:
    for token in run.execution.tokens:
        if token.status is _WAITING and (step_id is None or token.step_id == step_id):
            return token
    return None


async def _open_waiting(engine: Runtime, execution_id: str, *, run_next: bool) -> Run:
    """Lease a waiting execution (after applying due work) or raise ExecutionNotWaiting.

    Without the flow in this process only a hand-off (``run_next=False``) can proceed;
    otherwise ``FlowNotFound`` is raised and nothing changes.
    """
    acquired = await acquire(engine, execution_id, start=False)
    run = await open_run(engine, acquired, need_flow=False)
    if run is None:
        status = acquired.execution.status
        raise errors.ExecutionNotWaiting(execution_id, str(status))
    if run_next and not run.flow_known:
        await release_untouched(engine, run)
        raise errors.FlowNotFound(run.execution.flow_id, run.execution.flow_version)
    try:
        await apply_due(engine, run)
    except BaseException:
        await release_untouched(engine, run)
        raise
    if run.execution.status is not _WAITING_S:
        await release_untouched(engine, run)
        raise errors.ExecutionNotWaiting(execution_id, str(run.execution.status))
    return run


def _step_of(run: Run, token: Token) -> Step | None:
    """The step a waiting token is at; ``FlowNotFound`` when this process lacks the flow
    and the wait predates ``Token.wait_step`` (nothing to go on: nothing may change)."""
    step = run.waiting_step(token)
    if step is None and not run.flow_known:
        raise errors.FlowNotFound(run.execution.flow_id, run.execution.flow_version)
    return step


async def resume(
    engine: Runtime, execution_id: str, data: Any, *, token: str | None, run_next: bool = True
) -> RunResult:
    """See ``Engine.resume``."""
    token_hash = None
    if token is not None:
        token_hash = await _check_token(engine, token, execution_id)
    run = await _open_waiting(engine, execution_id, run_next=run_next)
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
        step = _step_of(run, waiting)
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
        if run_next and waiting.status is _ACTIVE:
            _refuse_missing_handler(engine, run, waiting.step_id)
        settle_status(run.execution)
        if not run_next:
            return await _hand_off(engine, run)
        await run.commit()
    except BaseException:
        await release_untouched(engine, run)
        raise
    return await drive(engine, run)


def _refuse_missing_handler(engine: Runtime, run: Run, step_id: str | None) -> None:
    """Raise ``HandlerNotFound`` before anything is committed when the step this call
    would run next has no handler here (``run_next=False`` hands it to a worker)."""
    step = run.flow.steps.get(step_id) if step_id is not None else None
    if step is not None and step.type not in TOKEN_MOVES and resolve_handler(engine, step) is None:
        raise errors.HandlerNotFound(step.type)


async def _hand_off(engine: Runtime, run: Run) -> RunResult:
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
        raise errors.InvalidValue(str(exc)) from None


async def _check_token(engine: Runtime, token: str, execution_id: str | None) -> str:
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
    engine: Runtime, token: str, data: Any, *, run_next: bool = True
) -> RunResult:
    """See ``Engine.resume_by_token``."""
    record = await engine.store.get_resume_token(hash_token(token))
    if record is None:
        raise errors.InvalidResumeToken("unknown token")
    return await resume(engine, record.execution_id, data, token=token, run_next=run_next)


async def signal(
    engine: Runtime,
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
        run = await _open_waiting(engine, execution_id, run_next=run_next)
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
        step = _step_of(run, waiting)
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
            waiting.wait_step = None
            target: str | None = step.transitions.ports[port]
            if run_next:
                _refuse_missing_handler(engine, run, target)
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
            if run_next and waiting.status is _ACTIVE:
                _refuse_missing_handler(engine, run, waiting.step_id)
            settle_status(run.execution)
            if not run_next:
                return await _hand_off(engine, run)
            await run.commit()
    except BaseException:
        await release_untouched(engine, run)
        raise
    return await drive(engine, run)


async def complete_task(
    engine: Runtime,
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

"""One step of one token: resolve input, call the handler, apply the result, commit."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from flowmonkey import errors
from flowmonkey.durations import MAX_DURATION_MS
from flowmonkey.engine import parallel
from flowmonkey.engine.builtins import WAIT_KINDS
from flowmonkey.engine.invoke import invoke
from flowmonkey.engine.limits import OutputError
from flowmonkey.engine.lookup import resolve_handler
from flowmonkey.engine.parallel import advance
from flowmonkey.engine.pipes import PipeFailure, pipe_rows
from flowmonkey.engine.recording import CommitFailed, StepCancelled, unrecordable
from flowmonkey.engine.result_check import check_result, clamp_delay_ms, clamp_duration
from flowmonkey.engine.run import StepRuntime
from flowmonkey.engine.secret_use import redact_attempt, resolve_step_config
from flowmonkey.engine.selectors import SelectorError, resolve_input
from flowmonkey.engine.timers import wake_parent
from flowmonkey.engine.transitions import fail_execution, finish_terminal, parked
from flowmonkey.handlers.context import HandlerContext
from flowmonkey.model.execution import (
    ErrorInfo,
    Execution,
    ExecutionStatus,
    StepRecord,
    Token,
    TokenStatus,
)
from flowmonkey.model.result import UNSET, Result

if TYPE_CHECKING:
    from flowmonkey.engine.run import Run
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.model.flow import Step
    from flowmonkey.model.tables import TableRow

__all__ = ["StepCancelled", "apply_result", "execute_step", "wait_snapshot"]

_RUNNING = ExecutionStatus.RUNNING
_PENDING = ExecutionStatus.PENDING
_WAITING_S = ExecutionStatus.WAITING
_COMPLETED = ExecutionStatus.COMPLETED
_FAILED = ExecutionStatus.FAILED
_ACTIVE = TokenStatus.ACTIVE
_WAITING = TokenStatus.WAITING
_DONE = TokenStatus.DONE


def wait_snapshot(step: Step) -> dict[str, Any]:
    """What ending a wait at ``step`` needs (``Token.wait_step``): its type, ``outputKey``
    and transitions, so resume, signal and timeouts work without the flow definition."""
    out: dict[str, Any] = {"type": step.type}
    if step.output_key is not None:
        out["outputKey"] = step.output_key
    transitions = step.transitions.to_dict()
    if transitions:
        out["transitions"] = transitions
    return out


def _retry_delay_ms(step: Step, retry_index: int) -> float:
    policy = step.retry
    assert policy is not None
    try:
        delay = policy.delay_ms(retry_index)
    except OverflowError:  # a huge multiplier to a high power
        delay = MAX_DURATION_MS
    if policy.jitter and delay > 0:
        delay += random.uniform(0, delay * 0.1)
    # However the policy came to be, a backoff never exceeds MAX_DURATION.
    return clamp_delay_ms(delay)


async def execute_step(engine: Runtime, run: Run, token: Token) -> tuple[str, str | None]:
    """Run the step under ``token`` and commit its outcome.

    Returns ``(outcome, next_step_id)``; ``outcome`` is ``success``/``failure``/``wait``,
    or ``error`` when the execution failed before a handler ran.
    """
    execution = run.execution
    flow = run.flow
    step_id = token.step_id
    step = flow.steps.get(step_id) if step_id is not None else None
    if step is None:
        await fail_execution(run, "STEP_NOT_FOUND", f'Step "{step_id}" not found', step_id=step_id)
        return "error", None
    if execution.step_count >= engine.options.max_steps:
        await fail_execution(
            run, "MAX_STEPS", f"Exceeded {engine.options.max_steps} steps", step_id=step_id
        )
        return "error", None
    if (step.type == "parallel" or step.type == "join") and engine.handlers.get(step.type) is None:
        async with run.applying():
            token.recoveries = 0  # the fork or join commits this token's move
            if step.type == "parallel":
                return await parallel.fork(engine, run, token, step)
            return await parallel.join_arrive(engine, run, token, step)
    handler = resolve_handler(engine, step)
    if handler is None:
        await fail_execution(
            run, "HANDLER_NOT_FOUND", f'No handler for "{step.type}"', step_id=step.id
        )
        return "error", None
    try:
        step_input = resolve_input(step.input, execution.context)
    except SelectorError as exc:
        await fail_execution(run, "INPUT_ERROR", str(exc), step_id=step.id)
        return "error", None

    clock = engine.clock
    started = clock.now()
    attempt = execution.retry_attempts.get(step.id, 0) + 1
    if execution.step_count == 0 and attempt == 1:
        run.emit("execution.started", started, {"flow_id": flow.id, "step_id": step.id})
    run.emit(
        "step.started",
        started,
        {"step_id": step.id, "handler_type": step.type, "attempt": attempt},
    )
    config: Any = step.config
    prepared: tuple[Any, tuple[str, ...]] | Result | None = None
    if engine.uses_secrets(flow, step):
        prepared = await resolve_step_config(engine, step)
        if not isinstance(prepared, Result):
            config = prepared[0]
    ctx = HandlerContext(
        input=step_input,
        config=config,
        context=run.context_view,
        step=step,
        execution_id=execution.id,
        attempt=attempt,
        run_number=execution.run_number,
        tenant_id=execution.tenant_id,
        lazy=(StepRuntime, run, token),
    )
    timeout = step.timeout or handler.timeout or engine.options.default_step_timeout
    if isinstance(prepared, Result):
        result, timed_out = prepared, False  # a missing secret: the handler never runs
    else:
        if prepared is not None:
            ctx._secrets = prepared[1]
            engine.services.secrets_in_use(ctx._secrets)
        try:
            result, timed_out = await invoke(engine, run, handler, ctx, timeout.total_seconds())
        finally:
            if ctx._secrets:
                engine.services.secrets_done(ctx._secrets)
        if ctx._secrets:
            # Before the checks: a message about a bad result must not quote a value.
            result = redact_attempt(result, ctx)
    result = check_result(result, started)
    if result.outcome == "failure":
        error = result.error
        if error is not None and error.retryable and not handler.metadata.retryable:
            # The handler declared its failures final (``@handler(retryable=False)``).
            result = Result.failure(error.code, error.message, details=error.details,
                                    retryable=False)  # fmt: skip
    if not run.concurrent:
        return await apply_result(
            engine, run, token, step, result, timed_out, timeout, started, attempt, ctx
        )
    async with run.applying():
        if token.status is _DONE or run.execution.status.is_terminal:
            # The branch was dropped (an ``any`` join), or a sibling ended the run, while
            # its handler ran: its result is discarded.
            return "dropped", None
        return await apply_result(
            engine, run, token, step, result, timed_out, timeout, started, attempt, ctx
        )


async def apply_result(
    engine: Runtime,
    run: Run,
    token: Token,
    step: Step,
    result: Result,
    timed_out: bool,
    timeout: timedelta,
    started: datetime,
    attempt: int,
    ctx: HandlerContext | None,
) -> tuple[str, str | None]:
    """Record an attempt's outcome and commit it (under the run lock when concurrent).

    Raises:
        CommitFailed: the commit could not be built or written for a reason that lies
            in the result (not the store's health); nothing was written.
    """
    execution = run.execution
    if run.concurrent:
        run.touched = [token]
    finished = engine.clock.now()
    execution.step_count += 1
    token.recoveries = 0  # this step commits: the execution is not poisoned
    if timed_out:
        run.emit("step.timeout", finished, {"step_id": step.id, "timeout_ms": timeout / _MS})
    outcome = result.outcome
    if outcome not in ("success", "wait", "failure"):
        result = Result.failure("HANDLER_ERROR", f"unknown result outcome {outcome!r}")
        outcome = "failure"
    pipes = step.pipes  # a step without pipes pays for these two tests only
    rows = None
    if pipes and outcome == "success":
        # Before the output is stored: a pipe that fails leaves no output behind.
        try:
            rows = await pipe_rows(engine, run, step, "success", _input_of(ctx), result,
                                   attempt, finished)  # fmt: skip
        except PipeFailure as exc:
            result = Result.failure(exc.code, exc.message, details=exc.details, retryable=False)
            outcome = "failure"
    # Store the output before deciding the outcome: a bad write turns success into failure.
    if outcome != "failure" and result.output is not None and step.output_key:
        try:
            run.write(step.output_key, result.output)
        except OutputError as exc:
            result = Result.failure("INPUT_ERROR", str(exc), retryable=False)
            outcome = "failure"
        except errors.ContextLimitError as exc:
            result = Result.failure(exc.code, exc.message, details=exc.details, retryable=False)
            outcome = "failure"
    if pipes:
        if outcome == "failure":
            # Rows of success pipes are dropped with the success; failure pipes fire
            # only on the step's final failure (no retry follows).
            rows = None
            if not _will_retry(execution, step, result):
                rows, result = await _failure_rows(engine, run, step, result, attempt,
                                                   _input_of(ctx), finished)  # fmt: skip
        if rows:
            run.table_rows.extend(rows)
    runtime = ctx._runtime if ctx is not None else None
    if outcome == "failure" and runtime is not None:
        # A failed attempt leaves no trace in the context: undo its ``ctx.set``s (also
        # when the handler succeeded but its output could not be stored).
        cast("StepRuntime", runtime).undo()
    error_dict = result.error.to_dict() if result.error is not None else None
    if engine.options.record_history:
        run.history.append(
            StepRecord(
                step_id=step.id,
                handler_type=step.type,
                attempt=attempt,
                run_number=execution.run_number,
                outcome=outcome,
                started_at=started,
                finished_at=finished,
                duration_ms=(finished - started).total_seconds() * 1000,
                error=error_dict,
                token_id=token.id if len(execution.tokens) > 1 else None,
            )
        )
    try:
        return await _route(engine, run, token, step, result, finished, attempt)
    except (errors.LeaseLost, errors.StoreUnavailable, StepCancelled):
        raise
    except Exception as exc:
        if not unrecordable(exc):
            raise
        # Nothing of this step reached the store; the driver reloads the execution and
        # records the step as failed instead (see ``driving.record_unrecordable``).
        failed = CommitFailed(token.id, step.id, attempt, started, exc)
        run.failed_commit = failed  # concurrent branches stop committing (see Run._commit)
        raise failed from exc


async def _route(
    engine: Runtime,
    run: Run,
    token: Token,
    step: Step,
    result: Result,
    finished: datetime,
    attempt: int,
) -> tuple[str, str | None]:
    outcome = result.outcome
    if outcome == "success":
        run.emit(
            "step.completed",
            finished,
            {"step_id": step.id, "outcome": "success", "attempt": attempt, "port": result.port},
        )
        return await _after_success(engine, run, token, step, result, finished)
    if outcome == "wait":
        run.emit(
            "step.completed",
            finished,
            {"step_id": step.id, "outcome": "wait", "attempt": attempt},
        )
        await _after_wait(engine, run, token, step, result, finished)
        return "wait", step.id
    error_dict = result.error.to_dict() if result.error is not None else None
    run.emit(
        "step.failed",
        finished,
        {"step_id": step.id, "attempt": attempt, "error": error_dict},
    )
    return await _after_failure(engine, run, token, step, result, finished, attempt)


_MS = timedelta(milliseconds=1)


def _input_of(ctx: HandlerContext | None) -> Any:
    return ctx.input if ctx is not None else None


def _will_retry(execution: Execution, step: Step, result: Result) -> bool:
    """Whether ``_after_failure`` retries this failure (the retry policy allows it)."""
    error = result.error
    policy = step.retry
    return (
        policy is not None
        and error is not None
        and error.retryable
        and execution.retry_attempts.get(step.id, 0) < policy.max_attempts
        and (policy.retry_on is None or error.code in policy.retry_on)
    )


async def _failure_rows(
    engine: Runtime,
    run: Run,
    step: Step,
    result: Result,
    attempt: int,
    step_input: Any,
    now: datetime,
) -> tuple[list[TableRow] | None, Result]:
    """Rows of the failure pipes; a pipe that cannot build its row replaces the step's
    error with its own (the original one kept in ``details.step_error``)."""
    try:
        return await pipe_rows(
            engine, run, step, "failure", step_input, result, attempt, now
        ), result
    except PipeFailure as exc:
        original = result.error.to_dict() if result.error is not None else None
        details = {**(exc.details or {}), "step_error": original}
        return None, Result.failure(exc.code, exc.message, details=details, retryable=False)


async def _after_success(
    engine: Runtime, run: Run, token: Token, step: Step, result: Result, now: datetime
) -> tuple[str, str | None]:
    execution = run.execution
    execution.retry_attempts.pop(step.id, None)
    if execution.checkpoint is not None:
        execution.checkpoint = None
    if result.next_step is not UNSET:
        target = result.next_step
    elif result.port is not None:
        ports = step.transitions.ports
        if result.port not in ports:
            await fail_execution(
                run,
                "INVALID_TRANSITION",
                f'Step "{step.id}" has no port "{result.port}"',
                step_id=step.id,
            )
            return "success", None
        target = ports[result.port]
    else:
        target = step.transitions.on_success
    return await advance(engine, run, token, step, target, "success", now)


async def _after_wait(
    engine: Runtime, run: Run, token: Token, step: Step, result: Result, now: datetime
) -> None:
    execution = run.execution
    wake_at = result.wake_at
    if wake_at is None and result.delay is not None:
        wake_at = now + result.delay
    kind = WAIT_KINDS.get(step.type) or ("timer" if wake_at is not None else "signal")
    token.status = _WAITING
    token.wake_at = wake_at
    token.wait_reason = result.reason
    token.wait_kind = kind
    token.wait_started_at = now
    token.wait_step = wait_snapshot(step)
    # The wait timeout bounds waits for something outside (a signal, resume, task or
    # child); a timer's own wake time already bounds it.
    wait_timeout = engine.wait_timeout_for(execution, step) if kind != "timer" else None
    if wait_timeout is not None:
        wait_timeout = clamp_duration(wait_timeout)  # a flow's "9999999d" cannot overflow
    token.wait_deadline_at = now + wait_timeout if wait_timeout is not None else None
    stop = parked(execution)
    if stop:
        execution.status = _WAITING_S
    run.emit(
        "execution.waiting",
        now,
        {
            "step_id": step.id,
            "wake_at": wake_at.isoformat() if wake_at else None,
            "reason": result.reason,
        },
    )
    if wake_at is not None and kind == "timer":
        run.emit("timer.scheduled", now, {"step_id": step.id, "wake_at": wake_at.isoformat()})
    await run.commit(release=stop, at=now)
    if kind == "child" and stop:
        # A child may have finished before this wait was committed; its wake-up could
        # not reach us then (we held the lease), so look now.
        await wake_parent(engine, execution.id, step.id, token.visit)


async def _after_failure(
    engine: Runtime,
    run: Run,
    token: Token,
    step: Step,
    result: Result,
    now: datetime,
    attempt: int,
) -> tuple[str, str | None]:
    execution = run.execution
    error = result.error
    assert error is not None
    policy = step.retry
    done = execution.retry_attempts.get(step.id, 0)
    if _will_retry(execution, step, result):
        assert policy is not None
        execution.retry_attempts[step.id] = done + 1
        delay_ms = _retry_delay_ms(step, done)
        if isinstance(result.delay, timedelta):
            # The server said when to come back (``Retry-After``); the policy caps it.
            delay_ms = clamp_delay_ms(min(result.delay / _MS, float(policy.max_backoff_ms)))
        run.emit(
            "step.retry",
            now,
            {
                "step_id": step.id,
                "attempt": done + 1,
                "max_attempts": policy.max_attempts,
                "backoff_ms": delay_ms,
                "error": error.to_dict(),
            },
        )
        if delay_ms > 0:
            wake_at = now + timedelta(milliseconds=delay_ms)
            token.status = _WAITING
            token.wake_at = wake_at
            token.wait_kind = "retry"
            token.wait_reason = f"Retry {done + 1}/{policy.max_attempts} after {delay_ms:g}ms"
            token.wait_started_at = now
            token.wait_deadline_at = None
            stop = parked(execution)
            if stop:
                execution.status = _WAITING_S
            await run.commit(release=stop)
            return "failure", step.id
        await run.commit()
        return "failure", step.id
    execution.retry_attempts.pop(step.id, None)
    execution.checkpoint = None
    info = ErrorInfo(
        code=error.code, message=error.message, step_id=step.id, details=error.details, at=now
    )
    execution.last_error = info
    target = step.transitions.on_failure
    if error.code == "TIMEOUT" and step.transitions.on_timeout is not None:
        target = step.transitions.on_timeout  # a timed-out step follows onTimeout
    if target is None:
        run.finish(_FAILED, now, info)
        run.emit("execution.failed", now, {"step_id": step.id, "error": info.to_dict()})
        await run.commit(release=True)
        await finish_terminal(run)
        return "failure", None
    return await advance(engine, run, token, step, target, "failure", now)

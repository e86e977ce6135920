"""How an execution's status and tokens move outside a handler call: settle the status from
the tokens, end the execution (failed/completed), leave a wait. Shared by the step code,
the timers and the control operations; it calls nothing above it (what follows a terminal
commit is ``Runtime.after_terminal``)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowmonkey.model.execution import ErrorInfo, Execution, ExecutionStatus, Token, TokenStatus

if TYPE_CHECKING:
    from flowmonkey.engine.run import Run
    from flowmonkey.model.flow import Step

__all__ = [
    "complete_if_done",
    "fail_execution",
    "finish_terminal",
    "move_after_wait",
    "parked",
    "settle_status",
]

_PENDING = ExecutionStatus.PENDING
_RUNNING = ExecutionStatus.RUNNING
_COMPLETED = ExecutionStatus.COMPLETED
_FAILED = ExecutionStatus.FAILED
_ACTIVE = TokenStatus.ACTIVE
_DONE = TokenStatus.DONE


def settle_status(execution: Execution) -> None:
    """Derive ``running``/``waiting`` from the tokens: waiting only when no token is active
    and one waits for something outside (a token parked at a join does not count)."""
    tokens = execution.tokens
    # Reversed: branches tend to arrive at a join in order, so an active one is near the end.
    if any(t.status is TokenStatus.ACTIVE for t in reversed(tokens)):
        execution.status = _RUNNING
    elif any(t.status is TokenStatus.WAITING and t.wait_kind != "join" for t in tokens):
        execution.status = ExecutionStatus.WAITING
    elif any(t.status is TokenStatus.WAITING for t in tokens):
        execution.status = _RUNNING


async def fail_execution(
    run: Run, code: str, message: str, *, step_id: str | None, details: Any = None
) -> None:
    """Fail the execution before/without a handler attempt (no step consumed)."""
    now = run.engine.clock.now()
    info = ErrorInfo(code=code, message=message, step_id=step_id, details=details, at=now)
    run.finish(_FAILED, now, info)
    run.emit("execution.failed", now, {"step_id": step_id, "error": info.to_dict()})
    await run.commit(release=True)
    await finish_terminal(run)


_ENDING_WAITS = frozenset({"delay", "waitForSignal", "userTask", "webhook"})


async def finish_terminal(run: Run) -> None:
    """Hooks and parent wake-up after the terminal commit. Shielded in a concurrent run:
    the branch runner cancels the other branches once the run ends, and that must not
    cut the hooks of the branch that ended it."""
    if run.concurrent:
        await asyncio.shield(run.engine.after_terminal(run.execution))
    else:
        await run.engine.after_terminal(run.execution)


def move_after_wait(
    step: Step | None, token: Token, step_count: int = 0, run: Run | None = None
) -> bool:
    """A wait is over: continue at onResume, else onSuccess, else the same step.

    Retry backoffs and child waits always re-run the same step (it is re-entrant). A
    built-in wait step (delay, waitForSignal, userTask) with neither target ends the
    token instead (returns True): re-running it would only wait again.
    """
    token.status = _ACTIVE
    kind = token.wait_kind
    if run is not None and token.step_id is not None and kind not in ("retry", "child"):
        # The wait is over: tokens minted for it must not resume a later visit.
        run.revoke_steps.append(token.step_id)
    token.wake_at = None
    token.wait_reason = None
    token.wait_kind = None
    token.wait_started_at = None
    token.wait_deadline_at = None
    token.wait_step = None
    if step is None or kind in ("retry", "child"):
        return False
    target = step.transitions.on_resume or step.transitions.on_success
    if target is not None:
        token.step_id = target
        token.visit = max(step_count, token.visit + 1)
        return False
    if step.type in _ENDING_WAITS:
        token.status = _DONE
        return True
    return False


def complete_if_done(run: Run, now: datetime) -> bool:
    """After a token ended: complete the execution when no token is left."""
    execution = run.execution
    if all(t.status is _DONE for t in execution.tokens):
        run.finish(_COMPLETED, now, None)
        run.emit(
            "execution.completed",
            now,
            {"flow_id": execution.flow_id, "total_steps": execution.step_count},
        )
        return True
    return False


def parked(execution: Any) -> bool:
    """True when no token is active: the execution waits (and releases its lease)."""
    return not any(t.status is _ACTIVE for t in execution.tokens)

"""Small helpers shared by the operations that change an execution from outside a step
(``control``, ``timers``): settle the status from the tokens, give a lease back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowmonkey.model.execution import Execution, ExecutionStatus, TokenStatus

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine
    from flowmonkey.engine.run import Run

__all__ = ["release_untouched", "settle_status"]

_PENDING = ExecutionStatus.PENDING
_RUNNING = ExecutionStatus.RUNNING


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


async def release_untouched(engine: Engine, run: Run) -> None:
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

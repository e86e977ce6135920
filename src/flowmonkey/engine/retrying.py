"""``Engine.retry``: a ``failed`` execution continues from the step that failed.

What a retry keeps and resets (the ruling in docs/guarantees.md):

- kept: the context (everything earlier steps wrote), the history, the event log, the
  idempotency key, the execution id;
- reset: the failed step's attempt counter (it gets its full ``retry`` policy again), the
  status (``pending``, then ``running``), ``error`` (moved to ``last_error``),
  ``finished_at``;
- ``run_number`` + 1 and one ``execution.retried`` event;
- the failed step runs again from its start; steps before it do not.

Only an execution with one position (no parallel branches alive at the failure) can be
retried: the failure ended every branch, and which ones had finished cannot be told apart
afterwards. Anything but ``failed`` is refused with ``ExecutionNotFailed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowmonkey import errors
from flowmonkey.engine.leasing import open_run, release_untouched
from flowmonkey.engine.lookup import get_flow
from flowmonkey.engine.results import RunResult
from flowmonkey.model.execution import ExecutionStatus, TokenStatus

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime

__all__ = ["retry"]


async def retry(engine: Runtime, execution_id: str) -> RunResult:
    """See ``Engine.retry``: revive the execution (one commit); it is left ``pending``."""
    stored = await engine.store.get(execution_id, history=False)
    if stored is None:
        raise errors.ExecutionNotFound(execution_id)
    if stored.status is not ExecutionStatus.FAILED:
        raise errors.ExecutionNotFailed(execution_id, str(stored.status))
    # Before any lease: a flow that is gone would make opening the run fail it again.
    await get_flow(engine, stored.flow_id, stored.flow_version)
    acquired = await engine.store.acquire(
        execution_id,
        owner=engine.lease_owner(),
        now=engine.clock.now(),
        lease_for=engine.options.lease_for,
        start=False,
        failed=True,
    )
    current = acquired.execution
    if current.status is not ExecutionStatus.FAILED:
        if acquired.lease is not None:
            await engine.store.release(acquired.lease)
        raise errors.ExecutionNotFailed(execution_id, str(current.status))
    run = await open_run(engine, acquired)
    if run is None:  # another process holds it (a retry under way elsewhere)
        raise errors.ExecutionNotFailed(execution_id, str(current.status), "it is leased")
    try:
        execution = run.execution
        error = execution.error
        step_id = (error.step_id if error is not None else None) or execution.current_step_id
        if len(execution.tokens) != 1 or step_id is None or step_id not in run.flow.steps:
            raise errors.ExecutionNotFailed(
                execution_id,
                "failed",
                "it failed with parallel branches or outside a step; start it again instead",
            )
        now = engine.clock.now()
        token = execution.tokens[0]
        token.status = TokenStatus.ACTIVE
        token.step_id = step_id
        execution.current_step_id = step_id
        execution.retry_attempts.pop(step_id, None)
        execution.last_error = error
        execution.error = None
        execution.finished_at = None
        execution.status = ExecutionStatus.PENDING
        execution.run_number += 1
        run.emit(
            "execution.retried",
            now,
            {
                "step_id": step_id,
                "run_number": execution.run_number,
                "previous_error": error.to_dict() if error is not None else None,
            },
        )
        await run.commit(release=True)
    except BaseException:
        await release_untouched(engine, run)
        raise
    await engine.notify_runnable(execution_id)
    return RunResult.of(execution)

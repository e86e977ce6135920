"""Ending an execution from outside a step (cancel, fail) and what follows any terminal
commit: cancelling children, ``task.cancelled`` events, lifecycle hooks."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.engine.bus import call_maybe_async
from flowmonkey.engine.leasing import acquire, open_run
from flowmonkey.engine.results import CancelResult, RunResult
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Cancellation, ErrorInfo, Execution, ExecutionStatus
from flowmonkey.stores.base import TaskQuery

if TYPE_CHECKING:
    from flowmonkey.engine.run import Run
    from flowmonkey.engine.runtime import Runtime

__all__ = ["cancel", "fail", "note_cancelled_tasks", "run_hooks", "terminal_cleanup"]


async def cancel(
    engine: Runtime, execution_id: str, *, source: str, reason: str | None
) -> CancelResult:
    """See ``Engine.cancel``: one commit under a stolen lease, then the children."""
    acquired = await acquire(engine, execution_id, steal=True, start=False)
    previous = acquired.execution.status
    run = await open_run(engine, acquired, need_flow=False)  # no step runs: no flow needed
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
    await note_cancelled_tasks(engine, run, now, reason or "execution cancelled")
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
    engine: Runtime, execution_id: str, *, message: str, step_id: str | None, code: str
) -> RunResult:
    """See ``Engine.fail``."""
    acquired = await acquire(engine, execution_id, steal=True, start=False)
    run = await open_run(engine, acquired, need_flow=False)
    if run is None:
        raise errors.ExecutionTerminal(execution_id, str(acquired.execution.status))
    now = engine.clock.now()
    execution = run.execution
    info = ErrorInfo(
        code=code, message=message, step_id=step_id or execution.current_step_id, at=now
    )
    await note_cancelled_tasks(engine, run, now, "execution failed")
    run.finish(ExecutionStatus.FAILED, now, info)
    run.emit("execution.failed", now, {"step_id": info.step_id, "error": info.to_dict()})
    await run.commit(release=True)
    engine.request_cancel(execution_id)
    await _cancel_children(engine, execution_id)
    await engine.after_terminal(execution)
    return RunResult.of(execution)


async def terminal_cleanup(engine: Runtime, execution: Execution) -> None:
    """After a terminal commit: cancel the children of a cancelled/failed execution, then
    wake its parent and run its hooks (``Runtime.after_terminal``)."""
    if execution.status is ExecutionStatus.CANCELLED or execution.status is ExecutionStatus.FAILED:
        await _cancel_children(engine, execution.id)
    await engine.after_terminal(execution)


async def _cancel_children(engine: Runtime, execution_id: str) -> int:
    count = 0
    for child in await engine.store.find_children(execution_id):
        if child.status.is_terminal:
            continue
        result = await cancel(engine, child.id, source="parent", reason="parent ended")
        count += int(result.cancelled)
    return count


async def note_cancelled_tasks(engine: Runtime, run: Run, now: Any, reason: str) -> None:
    """Emit ``task.cancelled`` for the pending tasks that ``finish`` is about to cancel."""
    pending = await engine.store.list_tasks(
        TaskQuery(execution_id=run.execution.id, status="pending", limit=10_000)
    )
    for task in pending:
        run.emit(
            "task.cancelled", now, {"task_id": task.id, "step_id": task.step_id, "reason": reason}
        )


async def run_hooks(engine: Runtime, execution: Execution) -> None:
    """Lifecycle hooks after the terminal commit; errors never undo it."""
    hooks = engine.hooks.get(execution.flow_id)
    if not hooks:
        return
    name = {
        ExecutionStatus.COMPLETED: "on_complete",
        ExecutionStatus.FAILED: "on_fail",
        ExecutionStatus.CANCELLED: "on_cancel",
    }.get(execution.status)
    if name is None:
        return
    for hook in hooks.get(name, ()):
        try:
            await call_maybe_async(hook, execution)
        except Exception as exc:
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

"""Calling a handler: whatever it raises or returns becomes a ``Result``.

Only a real cancellation of the calling task propagates (a worker shutting down, a
cancelled execution). ``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit`` and a
``CancelledError`` the handler raises itself are step failures (``HANDLER_ERROR``): handler
code cannot stop a worker.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.engine.eager import Resume, handoff
from flowmonkey.engine.recording import StepCancelled
from flowmonkey.engine.sync_pool import Raised
from flowmonkey.model.result import Result

if TYPE_CHECKING:
    from flowmonkey.engine.run import Run
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.handlers.context import HandlerContext
    from flowmonkey.handlers.registry import RegisteredHandler

__all__ = ["StepCancelled", "invoke"]


def _as_result(value: Any) -> Result:
    if isinstance(value, Result):
        return value
    return Result.success(value)


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not escape the engine
        text = ""
    return text or type(exc).__name__


def _failure_from(exc: BaseException) -> Result:
    if isinstance(exc, errors.ContextLimitError):
        # Deterministic: the same write would break the same limit on every retry.
        return Result.failure(exc.code, exc.message, details=exc.details, retryable=False)
    if isinstance(exc, errors.FlowMonkeyError):
        return Result.failure(exc.code, exc.message, details=exc.details)
    name = type(exc).__name__
    if not isinstance(exc, Exception):
        # SystemExit, KeyboardInterrupt, GeneratorExit, a CancelledError of its own:
        # raised by handler code, they end the step, never the process or the worker.
        text = _describe(exc)
        message = f"handler raised {name}" + (f": {text}" if text != name else "")
        return Result.failure("HANDLER_ERROR", message, details={"exception": name})
    return Result.failure("HANDLER_ERROR", _describe(exc), details={"exception": name})


async def invoke(
    engine: Runtime, run: Run, handler: RegisteredHandler, ctx: HandlerContext, timeout: float
) -> tuple[Result, bool]:
    """Call the handler; returns ``(result, timed_out)``. Never raises for anything the
    handler raises (``SystemExit`` and ``KeyboardInterrupt`` included); only a real
    cancellation of this task propagates."""
    if handler.is_async:
        try:
            coro = handler.fn(ctx)
            first = coro.send(None)
        except StopIteration as stop:
            return _as_result(stop.value), False
        except BaseException as exc:  # nothing was awaited yet: all of it is the handler's
            return _failure_from(exc), False
        if run.supervisor is not None and run.supervisor is asyncio.current_task():
            # A branch running eagerly in the supervisor: move to its own task first.
            await handoff()
        awaitable: Any = Resume(coro, first)
    else:
        if run.supervisor is not None and run.supervisor is asyncio.current_task():
            await handoff()
        awaitable = None
    task = asyncio.current_task()  # after a handoff: the branch's own task
    assert task is not None
    run.handler_tasks.add(task)
    timeout_cm: asyncio.Timeout | None = None
    try:
        if awaitable is None:
            # A sync handler may have to queue for a thread: its timeout starts with it.
            started = await engine.sync_handlers.start(
                handler.fn, ctx, queue_timeout=engine.options.sync_queue_timeout.total_seconds(),
                what=f'step "{ctx.step.id}" of {ctx.execution_id}',
            )  # fmt: skip
            if isinstance(started, Result):
                return started, False
            awaitable = started
        timeout_cm = asyncio.timeout(timeout)
        async with timeout_cm:
            value = await awaitable
    except TimeoutError:
        ctx.cancelled.set()
        return Result.failure("TIMEOUT", f"step timed out after {timeout:g}s"), True
    except asyncio.CancelledError as exc:
        ctx.cancelled.set()
        if run.cancel_requested:
            task.uncancel()
            raise StepCancelled() from None
        if task.cancelling():
            raise  # a real cancellation of this task (worker shutdown): it releases
        return _failure_from(exc), False  # the handler raised it itself
    except BaseException as exc:
        return _failure_from(exc), False
    finally:
        run.handler_tasks.discard(task)
    if timeout_cm.expired():
        # The handler swallowed the cancellation; its late result is discarded.
        return Result.failure("TIMEOUT", f"step timed out after {timeout:g}s"), True
    if type(value) is Raised:
        if isinstance(value.exc, TimeoutError):
            # As for an async handler: a TimeoutError it raises counts as its timeout.
            ctx.cancelled.set()
            return Result.failure("TIMEOUT", f"step timed out after {timeout:g}s"), True
        return _failure_from(value.exc), False
    return _as_result(value), False

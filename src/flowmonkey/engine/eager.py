"""Running coroutines eagerly: up to their first real wait, without a task.

Creating a task and a round trip through the event loop costs more than a quick handler
or an in-memory commit. The engine therefore starts such coroutines with ``send(None)``
and only gives them a task (with its timeout and cancellation) when they suspend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["HANDOFF", "Resume", "cancel_soon", "continue_in_task", "handoff", "run_eagerly"]


class Resume:
    """Continue a coroutine that already ran up to its first suspension point.

    The engine starts async handlers with ``coro.send(None)`` so that a handler which
    never suspends (most no-op and CPU-only handlers) finishes without a task or a timer.
    Only when it does suspend do we hand the rest of it to the event loop, here.
    """

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.coro
        to_yield = self.first
        while True:
            try:
                sent = yield to_yield
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    to_yield = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    to_yield = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class _Handoff:
    """Awaited by a branch that runs eagerly in the supervisor's task when it reaches
    something that needs its own task (a suspended handler: timeouts and cancellation
    act on "the current task"). ``run_branches`` sees ``HANDOFF`` come out of
    ``coro.send`` and continues the branch in a new task."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, Any, None]:
        yield HANDOFF


HANDOFF: Any = object()


async def continue_in_task(
    coro: Coroutine[Any, Any, Any], first: Any, started: set[Any] | None = None
) -> Any:
    """The rest of a coroutine that ran eagerly up to ``first`` (what it yielded).

    ``started`` receives this task once it runs: a task cancelled before its first step
    never reaches ``coro`` (the exception is raised before any code runs), so callers
    cancel unstarted tasks with ``cancel_soon``.
    """
    if started is not None:
        started.add(asyncio.current_task())
    if first is HANDOFF:
        try:
            first = coro.send(None)
        except StopIteration as stop:
            return stop.value
    return await Resume(coro, first)


def cancel_soon(task: asyncio.Task[Any], started: set[Any]) -> None:
    """Cancel ``task`` so that the coroutine it continues sees the ``CancelledError``."""
    if task in started:
        task.cancel()
    else:
        # Its first step is already queued; cancelling after it lets it resume ``coro``
        # first, so the handler inside gets the cancellation (and its cleanup runs).
        asyncio.get_running_loop().call_soon(task.cancel)


async def run_eagerly(coro: Coroutine[Any, Any, Any]) -> Any:
    """Await ``coro``, shielded from cancellation once it has to wait: an in-memory
    commit finishes right here without the task that ``asyncio.shield`` would need."""
    try:
        first = coro.send(None)
    except StopIteration as stop:
        return stop.value
    return await asyncio.shield(continue_in_task(coro, first))


async def handoff() -> None:
    """Yield ``HANDOFF`` to whoever drives this coroutine eagerly (``run_branches``)."""
    await _Handoff()

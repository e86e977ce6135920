"""Issue 9, items 2 and 6: a handler cannot stop the process, and a step's timeout counts
from when its handler starts (not while it queues for a sync-handler thread)."""

from __future__ import annotations

import asyncio
import sys
import threading
from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import EngineOptions, FlowBuilder, Result, handler
from flowmonkey.model.execution import ExecutionStatus
from reliability.conftest import MakeEngine


def _exit() -> None:
    sys.exit(3)


def _interrupt() -> None:
    raise KeyboardInterrupt


def _generator_exit() -> None:
    raise GeneratorExit("closing")


RAISERS = {
    "SystemExit": _exit,
    "KeyboardInterrupt": _interrupt,
    "GeneratorExit": _generator_exit,
}


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize("exception", sorted(RAISERS))
async def test_process_ending_exceptions_are_step_failures(
    make: MakeEngine, exception: str, sync: bool
) -> None:
    calls = 0

    def body() -> Result:
        nonlocal calls
        calls += 1
        RAISERS[exception]()
        return Result.success()

    if sync:

        @handler("quit")
        def quit_sync(ctx: Any) -> Result:
            return body()

        registered: Any = quit_sync
    else:

        @handler("quit")
        async def quit_async(ctx: Any) -> Result:
            await asyncio.sleep(0)  # raise after a suspension, not only on the first send
            return body()

        registered = quit_async

    flow = FlowBuilder("f").step("quit", "quit", on_failure="after").step("after", "ok")

    @handler("ok")
    async def ok(ctx: Any) -> Result:
        return Result.success("still here")

    async with make([registered, ok], [flow.build()]) as engine:
        result = await engine.start("f", {})
        # The process is still here, and the failure took the usual route.
        assert result.status is ExecutionStatus.COMPLETED
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.last_error is not None
        assert stored.last_error.code == "HANDLER_ERROR"
        assert exception in stored.last_error.message
        assert stored.last_error.details == {"exception": exception}
        assert calls == 1


async def test_exit_on_the_first_send_of_an_async_handler(make: MakeEngine) -> None:
    @handler("quit")
    async def quit_now(ctx: Any) -> Result:
        sys.exit("bye")

    async with make([quit_now], [FlowBuilder("f").step("quit", "quit").build()]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "HANDLER_ERROR"
        assert result.error.message == "handler raised SystemExit: bye"


async def _blocker_and_waiter(
    make: MakeEngine, *, step_timeout: timedelta, options: EngineOptions
) -> tuple[Any, ...]:
    release = threading.Event()
    blocked = threading.Event()
    ran: list[str] = []

    @handler("block")
    def block(ctx: Any) -> Result:
        blocked.set()
        release.wait(30)
        return Result.success()

    @handler("quick")
    def quick(ctx: Any) -> Result:
        ran.append(ctx.execution_id)
        return Result.success("done")

    flows = [
        FlowBuilder("slow").step("s", "block", timeout=timedelta(seconds=30)).build(),
        FlowBuilder("fast").step("q", "quick", timeout=step_timeout).build(),
    ]
    return (make([block, quick], flows, options=options), release, blocked, ran)


async def test_a_step_waiting_for_a_thread_does_not_time_out(make: MakeEngine) -> None:
    options = EngineOptions(sync_handler_threads=1)
    engine, release, blocked, ran = await _blocker_and_waiter(
        make, step_timeout=timedelta(milliseconds=50), options=options
    )
    async with engine:
        slow = asyncio.create_task(engine.start("slow", {}))
        await asyncio.to_thread(blocked.wait, 10)
        fast = asyncio.create_task(engine.start("fast", {}))
        pool = engine.sync_handlers
        while pool.queued_steps == 0:  # the fast step is queued behind the blocker
            await asyncio.sleep(0)
        assert pool.stats()["busy"] == 2
        # Longer than the fast step's 50 ms timeout passes while it only queues.
        await asyncio.sleep(0.2)
        assert not fast.done() and ran == []
        release.set()
        result = await fast
        assert result.status is ExecutionStatus.COMPLETED, result.error
        assert (await slow).status is ExecutionStatus.COMPLETED
        assert pool.queue_waits == 1 and pool.queue_timeouts == 0


async def test_a_step_that_cannot_get_a_thread_in_time_fails_distinctly(
    make: MakeEngine,
) -> None:
    options = EngineOptions(sync_handler_threads=1, sync_queue_timeout=timedelta(seconds=0.1))
    engine, release, blocked, ran = await _blocker_and_waiter(
        make, step_timeout=timedelta(seconds=30), options=options
    )
    async with engine:
        slow = asyncio.create_task(engine.start("slow", {}))
        await asyncio.to_thread(blocked.wait, 10)
        result = await engine.start("fast", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "HANDLER_QUEUE_TIMEOUT"
        release.set()
        assert (await slow).status is ExecutionStatus.COMPLETED
        assert ran == []  # the queued handler never ran
        assert engine.sync_handlers.queue_timeouts == 1

"""Leases and interruption: one runner per execution, cancel/fail of running handlers,
deadlines falling due between steps."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

from flowmonkey import ExecutionStatus, FlowBuilder, Result, handler
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import event_types, noop, wait_forever


def hanging() -> tuple[Any, asyncio.Event, list[str]]:
    started = asyncio.Event()
    never = asyncio.Event()
    log: list[str] = []

    @handler("hang")
    async def hang(ctx: Any) -> Result:
        log.append("start")
        started.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        log.append("finished")
        return Result.success()

    return hang, started, log


async def test_two_runs_never_run_one_execution_at_once(make: MakeEngine) -> None:
    hang, started, log = hanging()
    flow = FlowBuilder("f").step("s", "hang").build()
    async with make([hang], [flow]) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        first = asyncio.create_task(engine.run(execution_id))
        await started.wait()
        second = await engine.run(execution_id)
        assert second.status is ExecutionStatus.RUNNING
        assert await engine.run_until_idle() == 0
        assert log == ["start"]
        await engine.cancel(execution_id)
        assert (await asyncio.wait_for(first, 5)).status is ExecutionStatus.CANCELLED
        assert log == ["start", "cancelled"]


async def test_fail_running_handler(make: MakeEngine) -> None:
    hang, started, log = hanging()
    flow = FlowBuilder("f").step("s", "hang").step("n", "noop").build()
    async with make([hang, noop], [flow]) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        running = asyncio.create_task(engine.run(execution_id))
        await started.wait()
        failed = await engine.fail(execution_id, "operator", code="STOPPED")
        assert failed.status is ExecutionStatus.FAILED
        result = await asyncio.wait_for(running, 5)
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "STOPPED"
        assert log == ["start", "cancelled"]
        stored = await engine.get(execution_id)
        assert stored is not None and stored.history == []
        assert "n" not in [h.step_id for h in stored.history]


async def test_cancel_running_sync_handler_discards_result(make: MakeEngine) -> None:
    entered = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    @handler("sync-work")
    def work(ctx: Any) -> Result:
        entered.set()
        release.wait(10)
        finished.set()
        return Result.success({"late": True})

    flow = FlowBuilder("f").step("s", "sync-work", output_key="out").step("n", "noop").build()
    async with make([work, noop], [flow]) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        running = asyncio.create_task(engine.run(execution_id))
        await asyncio.to_thread(entered.wait, 10)
        cancel = await engine.cancel(execution_id)
        assert cancel.cancelled
        result = await asyncio.wait_for(running, 5)
        release.set()
        await asyncio.to_thread(finished.wait, 10)
        assert result.status is ExecutionStatus.CANCELLED
        stored = await engine.get(execution_id)
        assert stored is not None
        assert stored.status is ExecutionStatus.CANCELLED
        assert "out" not in stored.context
        assert stored.history == []


async def test_execution_deadline_between_steps(make: MakeEngine, clock: FakeClock) -> None:
    ran: list[str] = []

    @handler("slow")
    async def slow(ctx: Any) -> Result:
        ran.append(ctx.step.id)
        clock.advance(timedelta(hours=2))
        return Result.success()

    flow = FlowBuilder("f").step("a", "slow").step("b", "slow").build()
    async with make([slow], [flow]) as engine:
        created = await engine.create("f", {}, execution_timeout=timedelta(hours=1))
        result = await engine.run(created.execution.id)
        assert result.status is ExecutionStatus.CANCELLED
        assert result.execution.cancellation is not None
        assert result.execution.cancellation.source == "timeout"
        assert result.error is not None and result.error.code == "TIMEOUT"
        assert ran == ["a"]


async def test_cancel_waiting_then_tick_does_nothing(make: MakeEngine, clock: FakeClock) -> None:
    flow = FlowBuilder("f").step("w", "wait").build()
    async with make([wait_forever], [flow]) as engine:
        execution_id = (await engine.start("f", {}, wait_timeout=timedelta(minutes=1))).execution.id
        await engine.cancel(execution_id)
        before = await event_types(engine, execution_id)
        clock.advance(timedelta(days=2))
        assert await engine.tick_timers() == []
        assert await event_types(engine, execution_id) == before
        stored = await engine.get(execution_id)
        assert stored is not None and stored.status is ExecutionStatus.CANCELLED
        assert stored.cancellation is not None and stored.cancellation.source == "user"


async def test_cancel_wins_over_handler_that_swallows_cancellation(make: MakeEngine) -> None:
    started = asyncio.Event()
    never = asyncio.Event()

    @handler("stubborn")
    async def stubborn(ctx: Any) -> Result:
        started.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            pass  # a badly written handler
        return Result.success({"ignored": True})

    flow = FlowBuilder("f").step("s", "stubborn", output_key="out").step("n", "noop").build()
    async with make([stubborn, noop], [flow]) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        running = asyncio.create_task(engine.run(execution_id))
        await started.wait()
        assert (await engine.cancel(execution_id)).cancelled
        result = await asyncio.wait_for(running, 5)
        assert result.status is ExecutionStatus.CANCELLED
        stored = await engine.get(execution_id)
        assert stored is not None
        assert stored.status is ExecutionStatus.CANCELLED
        assert "out" not in stored.context
        assert stored.history == []


async def test_timeout_wins_over_handler_that_swallows_cancellation(make: MakeEngine) -> None:
    never = asyncio.Event()

    @handler("stubborn")
    async def stubborn(ctx: Any) -> Result:
        try:
            await never.wait()
        except asyncio.CancelledError:
            pass
        return Result.success({"late": True})

    flow = FlowBuilder("f").step("s", "stubborn", output_key="out", timeout=50).build()
    async with make([stubborn], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "TIMEOUT"
        assert "out" not in result.execution.context

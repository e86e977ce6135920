"""Issue 9, item 1: ``run_number`` grows on every re-claim, and a step re-claimed
``max_step_recoveries`` times without committing anything fails with ``POISONED_STEP``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from flowmonkey import EngineOptions, FlowBuilder, Result, handler
from flowmonkey.engine.engine import Engine
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.testing import FakeClock
from reliability.conftest import MakeEngine


async def crash_here() -> None:
    """The process 'dies' inside the handler: the task driving the step is cancelled
    for real, so nothing is committed and the lease is left to expire."""
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    await asyncio.sleep(0)


async def survive(call: Awaitable[Any]) -> None:
    """Run ``call`` in its own task, which a crash_here() inside it ends."""
    try:
        await asyncio.create_task(call)  # type: ignore[arg-type]
    except asyncio.CancelledError:
        pass


async def reclaim(engine: Engine, clock: FakeClock) -> None:
    """Let the lease expire, then claim and drive whatever is runnable."""
    clock.advance(engine.options.lease_for + timedelta(seconds=1))
    await survive(engine.run_until_idle())


async def test_run_number_grows_on_every_reclaim_and_a_poisoned_step_fails(
    make: MakeEngine, clock: FakeClock
) -> None:
    seen: list[int] = []

    @handler("charge")
    async def charge(ctx: Any) -> Result:
        seen.append(ctx.run_number)
        await crash_here()
        return Result.success()

    flow = FlowBuilder("f").step("charge", "charge").build()
    async with make([charge], [flow]) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        await survive(engine.run(execution_id))
        for _ in range(4):
            await reclaim(engine, clock)
            stored = await engine.get(execution_id)
            assert stored is not None and stored.status is ExecutionStatus.RUNNING
            # Persisted at the re-claim, although the step never committed.
            assert stored.run_number == seen[-1]
        assert seen == [1, 2, 3, 4, 5]
        await reclaim(engine, clock)
        assert seen == [1, 2, 3, 4, 5]  # not run a sixth time
        stored = await engine.get(execution_id)
        assert stored is not None
        assert stored.status is ExecutionStatus.FAILED
        assert stored.error is not None and stored.error.code == "POISONED_STEP"
        assert stored.error.step_id == "charge"
        assert stored.run_number == 6
        events = [e.type for e in await engine.events(execution_id)]
        assert events.count("execution.recovered") == 5
        assert events[-1] == "execution.failed"
        # Terminal: nothing claims it again.
        clock.advance(timedelta(hours=1))
        assert await engine.run_until_idle() == 0


async def test_a_step_that_commits_resets_the_count(make: MakeEngine, clock: FakeClock) -> None:
    crashes = {"a": 4, "b": 4}
    calls = {"a": 0, "b": 0}

    @handler("work")
    async def work(ctx: Any) -> Result:
        calls[ctx.step.id] += 1
        if crashes[ctx.step.id]:
            crashes[ctx.step.id] -= 1
            await crash_here()
        return Result.success(ctx.run_number)

    flow = FlowBuilder("f").step("a", "work", output_key="a").step("b", "work", output_key="b")
    async with make([work], [flow.build()]) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        await survive(engine.run(execution_id))
        for _ in range(8):
            await reclaim(engine, clock)
        stored = await engine.get(execution_id)
        assert stored is not None
        assert stored.status is ExecutionStatus.COMPLETED, stored.error
        assert calls == {"a": 5, "b": 5}
        assert stored.context == {"a": 5, "b": 9}


async def test_the_limit_is_an_option(make: MakeEngine, clock: FakeClock) -> None:
    calls = 0

    @handler("charge")
    async def charge(ctx: Any) -> Result:
        nonlocal calls
        calls += 1
        await crash_here()
        return Result.success()

    flow = FlowBuilder("f").step("charge", "charge").build()
    options = EngineOptions(max_step_recoveries=1)
    async with make([charge], [flow], options=options) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        await survive(engine.run(execution_id))
        await reclaim(engine, clock)
        stored = await engine.get(execution_id)
        assert stored is not None and stored.error is not None
        assert stored.error.code == "POISONED_STEP"
        assert calls == 1


async def test_recover_stale_counts_toward_the_limit(make: MakeEngine, clock: FakeClock) -> None:
    """The reaper's path (``recover_stale``) also counts and persists each recovery."""
    calls = 0

    @handler("charge")
    async def charge(ctx: Any) -> Result:
        nonlocal calls
        calls += 1
        await crash_here()
        return Result.success()

    flow = FlowBuilder("f").step("charge", "charge").build()
    options = EngineOptions(max_step_recoveries=2)
    async with make([charge], [flow], options=options) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        await survive(engine.run(execution_id))
        for _ in range(2):
            clock.advance(engine.options.stale_after + timedelta(seconds=1))
            await engine.recover_stale()
            await survive(engine.run(execution_id))
        stored = await engine.get(execution_id)
        assert stored is not None and stored.error is not None
        assert stored.error.code == "POISONED_STEP"
        assert calls == 2


async def test_operations_that_run_no_step_count_but_never_poison(
    make: MakeEngine, clock: FakeClock
) -> None:
    """A cancel that takes over an abandoned execution counts the recovery but does
    what it was asked (POISONED_STEP is only decided where the step would run)."""

    @handler("charge")
    async def charge(ctx: Any) -> Result:
        await crash_here()
        return Result.success()

    flow = FlowBuilder("f").step("charge", "charge").build()
    options = EngineOptions(max_step_recoveries=1)
    async with make([charge], [flow], options=options) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        await survive(engine.run(execution_id))
        clock.advance(engine.options.lease_for + timedelta(seconds=1))
        cancelled = await engine.cancel(execution_id, reason="stuck")
        assert cancelled.cancelled, cancelled.error
        stored = await engine.get(execution_id)
        assert stored is not None and stored.status is ExecutionStatus.CANCELLED
        assert stored.run_number == 2

"""Waits and timers: no-time waits never resume alone; delays, tick_timers, continuation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flowmonkey import EngineOptions, ExecutionStatus, FlowBuilder, Result
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import capture, event_types, noop, state, wait_forever

NO_TIMEOUTS = EngineOptions(execution_timeout=None, wait_timeout=None)


async def test_wait_without_time_returns_waiting(make: MakeEngine) -> None:
    flow = FlowBuilder("f").step("w", "wait").build()
    async with make([wait_forever], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.WAITING
        assert result.wake_at is None
        assert result.wait_reason == "waiting for input"
        assert result.execution.current_step_id == "w"


async def test_wait_without_time_never_resumes_by_itself(
    make: MakeEngine, clock: FakeClock
) -> None:
    h, seen = capture("w", result=lambda ctx: Result.wait())
    flow = FlowBuilder("f").step("w", "w", on_success="done").step("done", "noop").build()
    async with make([h, noop], [flow], options=NO_TIMEOUTS) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        before = await state(engine, execution_id)
        for _ in range(3):
            clock.advance(timedelta(days=30))
            assert await engine.tick_timers() == []
            assert await engine.run_until_idle() == 0
            result = await engine.run(execution_id)
            assert result.status is ExecutionStatus.WAITING
        assert len(seen) == 1
        after = await state(engine, execution_id)
        assert after[0]["status"] == "waiting"
        assert after[1] == before[1]  # no events at all


async def test_wait_without_time_survives_default_timeouts_within_a_day(
    make: MakeEngine, clock: FakeClock
) -> None:
    flow = FlowBuilder("f").step("w", "wait").build()
    async with make([wait_forever], [flow]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        clock.advance(timedelta(hours=23))
        await engine.tick_timers()
        result = await engine.run(execution_id)
        assert result.status is ExecutionStatus.WAITING


def delay_flow(**transitions: Any) -> Any:
    builder = FlowBuilder("f").step("w", "sleep", **transitions)
    return builder.step("r", "noop", on_success=None).step("s", "noop", on_success=None).build()


def sleeper(clock: FakeClock | None = None) -> tuple[Any, list[Any]]:
    def result(ctx: Any) -> Result:
        if ctx.config.get("wake_at") and clock is not None:
            return Result.wait(wake_at=clock.now() + timedelta(minutes=5))
        return Result.wait(delay=timedelta(seconds=60), reason="nap")

    return capture("sleep", result=result)


async def test_delay_not_runnable_before_due(make: MakeEngine, clock: FakeClock) -> None:
    h, seen = sleeper()
    async with make([h, noop], [delay_flow(on_success="s")]) as engine:
        start = clock.now()
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.WAITING
        assert result.wake_at == start + timedelta(seconds=60)
        execution_id = result.execution.id
        clock.advance(timedelta(seconds=59))
        assert await engine.tick_timers() == []
        again = await engine.run(execution_id)
        assert again.status is ExecutionStatus.WAITING
        assert await engine.run_until_idle() == 0
        assert len(seen) == 1
        clock.advance(timedelta(seconds=1))
        done = await engine.run(execution_id)
        assert done.status is ExecutionStatus.COMPLETED
        assert [h.step_id for h in done.execution.history] == ["w", "s"]


async def test_wake_at(make: MakeEngine, clock: FakeClock) -> None:
    h, _ = sleeper(clock)
    flow = (
        FlowBuilder("f")
        .step("w", "sleep", config={"wake_at": True}, on_success="s")
        .step("s", "noop")
        .build()
    )
    async with make([h, noop], [flow]) as engine:
        start = clock.now()
        result = await engine.start("f", {})
        assert result.wake_at == start + timedelta(minutes=5)
        clock.advance(timedelta(minutes=4))
        assert (await engine.run(result.execution.id)).status is ExecutionStatus.WAITING
        clock.advance(timedelta(minutes=1))
        assert (await engine.run(result.execution.id)).status is ExecutionStatus.COMPLETED


async def test_tick_timers_makes_runnable_but_runs_nothing(
    make: MakeEngine, clock: FakeClock
) -> None:
    h, seen = sleeper()
    async with make([h, noop], [delay_flow(on_success="s")]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        clock.advance(timedelta(seconds=61))
        assert await engine.tick_timers() == [execution_id]
        stored = await engine.get(execution_id)
        assert stored is not None
        assert stored.status is ExecutionStatus.PENDING
        assert stored.wake_at is None
        assert stored.current_step_id == "s"
        assert len(seen) == 1
        assert [r.step_id for r in stored.history] == ["w"]
        types = await event_types(engine, execution_id)
        assert "step.started" not in types[types.index("timer.fired") :]
        assert types[-2:] == ["timer.fired", "execution.resumed"]
        # A second tick finds nothing more to do.
        assert await engine.tick_timers() == []
        result = await engine.run(execution_id)
        assert result.status is ExecutionStatus.COMPLETED


async def test_continues_at_on_resume_first(make: MakeEngine, clock: FakeClock) -> None:
    h, _ = sleeper()
    async with make([h, noop], [delay_flow(on_resume="r", on_success="s")]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        clock.advance(timedelta(seconds=60))
        result = await engine.run(execution_id)
        assert result.status is ExecutionStatus.COMPLETED
        assert [r.step_id for r in result.execution.history] == ["w", "r"]


async def test_without_on_resume_or_on_success_reruns_same_step(
    make: MakeEngine, clock: FakeClock
) -> None:
    def result(ctx: Any) -> Result:
        if ctx.execution.step_count == 0:
            return Result.wait(delay=10)
        return Result.success({"second": True})

    h, seen = capture("sleep", result=result)
    flow = FlowBuilder("f").step("w", "sleep", output_key="out", on_success=None).build()
    async with make([h], [flow]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        clock.advance(10)
        done = await engine.run(execution_id)
        assert done.status is ExecutionStatus.COMPLETED
        assert [r.step_id for r in done.execution.history] == ["w", "w"]
        assert [r.outcome for r in done.execution.history] == ["wait", "success"]
        assert done.execution.context == {"out": {"second": True}}
        assert len(seen) == 2


async def test_run_until_idle_drives_every_due_execution(
    make: MakeEngine, clock: FakeClock
) -> None:
    h, _ = sleeper()
    async with make([h, noop], [delay_flow(on_success="s")]) as engine:
        ids = [(await engine.start("f", {"i": i})).execution.id for i in range(3)]
        pending = await engine.create("f", {"i": 99})
        # The created-but-never-run execution is runnable right away.
        assert await engine.run_until_idle() == 1
        page = await engine.list(status="waiting")
        assert {e.id for e in page.items} == {*ids, pending.execution.id}
        clock.advance(60)
        assert await engine.run_until_idle() == 4
        for execution_id in [*ids, pending.execution.id]:
            stored = await engine.get(execution_id)
            assert stored is not None and stored.status is ExecutionStatus.COMPLETED
        assert await engine.run_until_idle() == 0


async def test_waiting_events(make: MakeEngine, clock: FakeClock) -> None:
    h, _ = sleeper()
    async with make([h, noop], [delay_flow(on_success="s")]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        events = await engine.events(execution_id)
        waiting = [e for e in events if e.type == "execution.waiting"]
        assert len(waiting) == 1
        assert waiting[0].data["step_id"] == "w"
        assert waiting[0].data["reason"] == "nap"
        assert "timer.scheduled" in [e.type for e in events]

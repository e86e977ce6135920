"""Events (persisted and delivered), history records, lifecycle hooks, crash safety."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import EngineOptions, ExecutionStatus, FlowBuilder, Result, handler
from flowmonkey.model.events import Event
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import boom, noop, state, wait_forever


def simple() -> Any:
    return FlowBuilder("f").step("a", "noop").step("b", "noop").build()


SIMPLE_EVENTS = [
    "execution.created",
    "execution.started",
    "step.started",
    "step.completed",
    "transition",
    "step.started",
    "step.completed",
    "execution.completed",
]


async def test_simple_run_event_sequence(make: MakeEngine) -> None:
    delivered: list[Event] = []
    async with make([noop], [simple()]) as engine:
        engine.on("*", delivered.append)
        execution_id = (await engine.start("f", {})).execution.id
        persisted = await engine.events(execution_id)
        assert [e.type for e in persisted] == SIMPLE_EVENTS
        assert [e.sequence for e in persisted] == list(range(1, len(SIMPLE_EVENTS) + 1))
        assert all(e.execution_id == execution_id for e in persisted)
        assert all(e.data["execution_id"] == execution_id for e in persisted)
        assert [(e.type, e.sequence) for e in delivered] == [
            (e.type, e.sequence) for e in persisted
        ]
        transition = persisted[4]
        assert transition.data["from_step_id"] == "a"
        assert transition.data["to_step_id"] == "b"
        assert await engine.events(execution_id, after=6) == persisted[6:]


async def test_failure_and_wait_event_sequences(make: MakeEngine) -> None:
    fail_flow = FlowBuilder("bad").step("s", "boom").build()
    wait_flow = FlowBuilder("w").step("s", "wait", on_success="n").step("n", "noop").build()
    async with make([boom, wait_forever, noop], [fail_flow, wait_flow]) as engine:
        failed = (await engine.start("bad", {})).execution.id
        assert [e.type for e in await engine.events(failed)] == [
            "execution.created",
            "execution.started",
            "step.started",
            "step.failed",
            "execution.failed",
        ]
        waiting = (await engine.start("w", {})).execution.id
        await engine.resume(waiting, {"r": 1})
        events = await engine.events(waiting)
        assert [e.type for e in events] == [
            "execution.created",
            "execution.started",
            "step.started",
            "step.completed",
            "execution.waiting",
            "execution.resumed",
            "step.started",
            "step.completed",
            "execution.completed",
        ]
        assert [e.sequence for e in events] == list(range(1, 10))


async def test_specific_wildcard_async_listeners_and_unsubscribe(make: MakeEngine) -> None:
    completed: list[str] = []
    everything: list[str] = []
    async_seen: list[str] = []
    async_done = asyncio.Event()

    async def async_listener(event: Event) -> None:
        await asyncio.sleep(0)
        async_seen.append(event.type)
        if event.type == "execution.completed":
            async_done.set()

    async with make([noop], [simple()]) as engine:
        unsubscribe = engine.on("step.completed", lambda e: completed.append(e.data["step_id"]))
        engine.on("*", lambda e: everything.append(e.type))
        engine.on("*", async_listener)
        await engine.start("f", {})
        await asyncio.wait_for(async_done.wait(), 5)
        assert completed == ["a", "b"]
        assert everything == SIMPLE_EVENTS
        assert async_seen == SIMPLE_EVENTS
        unsubscribe()
        unsubscribe()  # idempotent
        await engine.start("f", {})
        assert completed == ["a", "b"]
        assert everything == SIMPLE_EVENTS * 2


async def test_raising_listeners_never_break_a_step(make: MakeEngine) -> None:
    calls: list[str] = []

    def bad(event: Event) -> None:
        calls.append(event.type)
        raise RuntimeError("listener bug")

    async def bad_async(event: Event) -> None:
        raise RuntimeError("async listener bug")

    async with make([noop], [simple()]) as engine:
        engine.on("*", bad)
        engine.on("step.completed", bad_async)
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert calls == SIMPLE_EVENTS
        execution_id = result.execution.id
        assert [e.type for e in await engine.events(execution_id)] == SIMPLE_EVENTS
        stored = await engine.get(execution_id)
        assert stored is not None and stored.status is ExecutionStatus.COMPLETED


# -- history ----------------------------------------------------------------------------


async def test_history_records(make: MakeEngine, clock: FakeClock) -> None:
    @handler("slow")
    async def slow(ctx: Any) -> Result:
        clock.advance(timedelta(seconds=2))
        if ctx.attempt == 1:
            return Result.failure("AGAIN", "once more")
        return Result.success()

    flow = FlowBuilder("f").step("s", "slow", retry={"maxAttempts": 1}).step("n", "noop").build()
    start = clock.now()
    async with make([slow, noop], [flow]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        stored = await engine.get(execution_id)
        assert stored is not None
        history = stored.history
        assert [
            (h.step_id, h.handler_type, h.attempt, h.run_number, h.outcome) for h in history
        ] == [
            ("s", "slow", 1, 1, "failure"),
            ("s", "slow", 2, 1, "success"),
            ("n", "noop", 1, 1, "success"),
        ]
        assert history[0].started_at == start
        assert history[0].finished_at == start + timedelta(seconds=2)
        assert history[0].duration_ms == 2000
        assert history[1].started_at == start + timedelta(seconds=2)
        assert history[2].duration_ms == 0
        assert history[0].error == {"code": "AGAIN", "message": "once more"}
        assert history[1].error is None


async def test_history_off(make: MakeEngine) -> None:
    options = EngineOptions(record_history=False)
    async with make([noop], [simple()], options=options) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.history == []
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.history == []
        assert stored.step_count == 2


# -- lifecycle hooks --------------------------------------------------------------------


async def test_hooks_run_after_terminal_commit(make: MakeEngine) -> None:
    seen: list[tuple[str, str, str | None]] = []
    fail_flow = FlowBuilder("bad").step("s", "boom").build()
    wait_flow = FlowBuilder("w").step("s", "wait").build()
    async with make([noop, boom, wait_forever], [simple(), fail_flow, wait_flow]) as engine:

        async def on_complete(execution: Any) -> None:
            stored = await engine.get(execution.id)
            assert stored is not None
            seen.append(("complete", str(execution.status), str(stored.status)))

        def on_fail(execution: Any) -> None:
            seen.append(("fail", str(execution.status), execution.error.code))

        def on_cancel(execution: Any) -> None:
            seen.append(("cancel", str(execution.status), execution.cancellation.source))

        engine.add_hooks("f", on_complete=on_complete)
        engine.add_hooks("bad", on_fail=on_fail)
        engine.add_hooks("w", on_cancel=on_cancel, on_complete=on_complete)
        await engine.start("f", {})
        assert seen == [("complete", "completed", "completed")]
        await engine.start("bad", {})
        assert seen[-1] == ("fail", "failed", "BOOM")
        waiting = (await engine.start("w", {})).execution.id
        assert len(seen) == 2
        await engine.cancel(waiting)
        assert seen[-1] == ("cancel", "cancelled", "user")
        assert len(seen) == 3


def sync_bad_hook(execution: Any) -> None:
    raise RuntimeError("hook exploded")


async def async_bad_hook(execution: Any) -> None:
    await asyncio.sleep(0)
    raise RuntimeError("hook exploded")


@pytest.mark.parametrize("bad_hook", [sync_bad_hook, async_bad_hook], ids=["sync", "async"])
async def test_raising_hook_is_reported_and_never_undoes_commit(
    make: MakeEngine, bad_hook: Any
) -> None:
    errors_seen: list[Event] = []

    async with make([noop], [simple()]) as engine:
        engine.add_hooks("f", on_complete=bad_hook)
        engine.on("error", errors_seen.append)
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        execution_id = result.execution.id
        assert len(errors_seen) == 1
        event = errors_seen[0]
        assert event.type == "error"
        assert event.execution_id == execution_id
        assert event.data["hook"] == "on_complete"
        assert "hook exploded" in event.data["error"]
        stored = await engine.get(execution_id)
        assert stored is not None and stored.status is ExecutionStatus.COMPLETED
        assert [e.type for e in await engine.events(execution_id)] == SIMPLE_EVENTS


async def test_hooks_run_for_timeouts_applied_by_tick_timers(
    make: MakeEngine, clock: FakeClock
) -> None:
    seen: list[tuple[str, str]] = []
    flow = FlowBuilder("w").step("s", "wait").build()
    async with make([wait_forever], [flow]) as engine:
        engine.add_hooks(
            "w",
            on_cancel=lambda e: seen.append(("cancel", e.id)),
            on_fail=lambda e: seen.append(("fail", e.id)),
        )
        timed_out = (await engine.start("w", {}, execution_timeout=timedelta(hours=1))).execution
        wait_expired = (await engine.start("w", {}, wait_timeout=timedelta(hours=1))).execution
        clock.advance(timedelta(hours=1))
        assert sorted(await engine.tick_timers()) == sorted([timed_out.id, wait_expired.id])
        assert sorted(seen) == sorted([("cancel", timed_out.id), ("fail", wait_expired.id)])


# -- crash safety -----------------------------------------------------------------------


async def crash_here() -> None:
    """Stands in for the process dying in the middle of a handler: the task driving the
    execution is cancelled for real (an exception the handler raises, even a
    BaseException, is only a step failure)."""
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    await asyncio.sleep(0)


async def test_crashing_handler_leaves_last_commit(make: MakeEngine, clock: FakeClock) -> None:
    crashed = False

    @handler("crashy")
    async def crashy(ctx: Any) -> Result:
        nonlocal crashed
        ctx.set("half-done", True)
        if not crashed:
            crashed = True
            await crash_here()
        return Result.success({"run_number": ctx.run_number, "attempt": ctx.attempt})

    @handler("first")
    async def first(ctx: Any) -> Result:
        return Result.success("one")

    flow = (
        FlowBuilder("f")
        .step("a", "first", output_key="a")
        .step("b", "crashy", output_key="b")
        .build()
    )
    async with make([first, crashy], [flow]) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        try:
            await engine.run(execution_id)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        else:
            raise AssertionError("the crash should propagate")
        stored = await engine.get(execution_id)
        assert stored is not None
        assert stored.status is ExecutionStatus.RUNNING
        assert stored.current_step_id == "b"
        assert stored.context == {"a": "one"}
        assert [h.step_id for h in stored.history] == ["a"]
        _, events = await state(engine, execution_id)
        assert events[-1]["type"] == "transition"
        # The lease runs out; recovery re-runs the step (at least once).
        clock.advance(EngineOptions().lease_for + timedelta(seconds=1))
        assert await engine.recover_stale() == [execution_id]
        result = await engine.run(execution_id)
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.context["b"] == {"run_number": 2, "attempt": 1}
        assert result.execution.context["half-done"] is True
        assert [(h.step_id, h.run_number) for h in result.execution.history] == [
            ("a", 1),
            ("b", 2),
        ]

"""Execution and wait timeouts; context limits on every write."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import (
    ContextLimits,
    EngineOptions,
    ExecutionStatus,
    FlowBuilder,
    Result,
    errors,
    handler,
)
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import capture, event_types, noop, state, wait_forever


def wait_flow(on_timeout: str | None = None) -> Any:
    return (
        FlowBuilder("f")
        .step("w", "wait", on_timeout=on_timeout, on_success=None)
        .step("expired", "noop", on_success=None)
        .build()
    )


# -- execution timeout ------------------------------------------------------------------


def assert_timed_out(execution: Any) -> None:
    assert execution.status is ExecutionStatus.CANCELLED
    assert execution.cancellation is not None
    assert execution.cancellation.source == "timeout"
    assert execution.error is not None
    assert execution.error.code == "TIMEOUT"


@pytest.mark.parametrize("how", ["run", "tick_timers"])
async def test_execution_timeout(make: MakeEngine, clock: FakeClock, how: str) -> None:
    async with make([wait_forever, noop], [wait_flow()]) as engine:
        created = await engine.create("f", {}, execution_timeout=timedelta(minutes=10))
        execution_id = created.execution.id
        assert (await engine.run(execution_id)).status is ExecutionStatus.WAITING
        clock.advance(timedelta(minutes=9))
        assert await engine.tick_timers() == []
        assert (await engine.run(execution_id)).status is ExecutionStatus.WAITING
        clock.advance(timedelta(minutes=1))
        if how == "run":
            result = await engine.run(execution_id)
            assert_timed_out(result.execution)
        else:
            assert await engine.tick_timers() == [execution_id]
        stored = await engine.get(execution_id)
        assert_timed_out(stored)
        types = await event_types(engine, execution_id)
        assert types.count("execution.cancelled") == 1
        assert "execution.failed" not in types


async def test_execution_timeout_of_never_run_execution(make: MakeEngine, clock: FakeClock) -> None:
    async with make([wait_forever, noop], [wait_flow()]) as engine:
        created = await engine.create("f", {}, execution_timeout=timedelta(seconds=30))
        clock.advance(31)
        assert await engine.tick_timers() == [created.execution.id]
        assert_timed_out(await engine.get(created.execution.id))


async def test_default_execution_timeout_applies(make: MakeEngine, clock: FakeClock) -> None:
    options = EngineOptions(execution_timeout=timedelta(hours=1), wait_timeout=None)
    async with make([wait_forever, noop], [wait_flow()], options=options) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        clock.advance(timedelta(hours=1))
        await engine.tick_timers()
        assert_timed_out(await engine.get(execution_id))


async def test_execution_timeout_cancels_children(make: MakeEngine, clock: FakeClock) -> None:
    async with make([wait_forever, noop], [wait_flow()]) as engine:
        parent = (await engine.start("f", {}, execution_timeout=timedelta(minutes=1))).execution
        child = (await engine.start("f", {}, parent_execution_id=parent.id)).execution
        assert child.status is ExecutionStatus.WAITING
        clock.advance(timedelta(minutes=1))
        await engine.run(parent.id)
        stored_child = await engine.get(child.id)
        assert stored_child is not None
        assert stored_child.status is ExecutionStatus.CANCELLED
        assert stored_child.cancellation is not None
        assert stored_child.cancellation.source == "parent"


async def test_resume_after_execution_timeout(make: MakeEngine, clock: FakeClock) -> None:
    async with make([wait_forever, noop], [wait_flow()]) as engine:
        execution_id = (
            await engine.start("f", {}, execution_timeout=timedelta(minutes=1))
        ).execution.id
        clock.advance(timedelta(minutes=2))
        with pytest.raises(errors.ExecutionNotWaiting):
            await engine.resume(execution_id, {"late": True})
        stored = await engine.get(execution_id)
        assert_timed_out(stored)
        assert stored is not None and "resumeData" not in stored.context


# -- wait timeout -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["run", "tick_timers"])
async def test_wait_timeout_follows_on_timeout(
    make: MakeEngine, clock: FakeClock, how: str
) -> None:
    async with make([wait_forever, noop], [wait_flow(on_timeout="expired")]) as engine:
        execution_id = (await engine.start("f", {}, wait_timeout=timedelta(hours=1))).execution.id
        clock.advance(timedelta(minutes=59))
        assert (await engine.run(execution_id)).status is ExecutionStatus.WAITING
        clock.advance(timedelta(minutes=1))
        if how == "tick_timers":
            assert await engine.tick_timers() == [execution_id]
            stored = await engine.get(execution_id)
            assert stored is not None
            assert stored.status is ExecutionStatus.PENDING
            assert stored.current_step_id == "expired"
        result = await engine.run(execution_id)
        assert result.status is ExecutionStatus.COMPLETED
        assert [r.step_id for r in result.execution.history] == ["w", "expired"]
        assert "step.timeout" in await event_types(engine, execution_id)


@pytest.mark.parametrize("how", ["run", "tick_timers"])
async def test_wait_timeout_without_on_timeout_fails(
    make: MakeEngine, clock: FakeClock, how: str
) -> None:
    async with make([wait_forever, noop], [wait_flow()]) as engine:
        execution_id = (await engine.start("f", {}, wait_timeout=timedelta(hours=1))).execution.id
        clock.advance(timedelta(hours=1))
        if how == "run":
            await engine.run(execution_id)
        else:
            assert await engine.tick_timers() == [execution_id]
        stored = await engine.get(execution_id)
        assert stored is not None
        assert stored.status is ExecutionStatus.FAILED
        assert stored.error is not None and stored.error.code == "TIMEOUT"
        assert stored.error.step_id == "w"


async def test_signal_after_wait_timeout_is_refused(make: MakeEngine, clock: FakeClock) -> None:
    async with make([wait_forever, noop], [wait_flow()]) as engine:
        execution_id = (await engine.start("f", {}, wait_timeout=timedelta(hours=1))).execution.id
        clock.advance(timedelta(hours=2))
        with pytest.raises(errors.InvalidSignal):
            await engine.signal(execution_id, "w", payload={"late": 1})
        stored = await engine.get(execution_id)
        assert stored is not None and stored.status is ExecutionStatus.FAILED
        assert "w" not in stored.context


# -- context limits ---------------------------------------------------------------------

LIMITS = ContextLimits(max_value_bytes=100, max_total_bytes=400, max_keys=4, max_depth=3)
OPTIONS = EngineOptions(context_limits=LIMITS)


@pytest.mark.parametrize(
    ("context", "error"),
    [
        ({"big": "x" * 200}, errors.ContextValueTooLargeError),
        ({f"k{i}": "y" * 80 for i in range(4)} | {"k4": 1}, errors.ContextKeyLimitError),
        ({f"k{i}": "y" * 95 for i in range(4)}, errors.ContextSizeLimitError),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, errors.ContextNestingError),
    ],
    ids=["value", "keys", "total", "depth"],
)
async def test_initial_context_over_limit_creates_nothing(
    make: MakeEngine, context: dict[str, Any], error: type[Exception]
) -> None:
    async with make([noop], [FlowBuilder("f").step("s", "noop").build()], options=OPTIONS) as e:
        with pytest.raises(error) as info:
            await e.create("f", context)
        assert isinstance(info.value, errors.ContextLimitError)
        assert (await e.list()).items == []
        assert await e.run_until_idle() == 0


@pytest.mark.parametrize(
    ("context", "value", "output_key", "code"),
    [
        ({}, "x" * 200, "out", "CONTEXT_VALUE_TOO_LARGE"),
        ({"a": 1, "b": 2, "c": 3, "d": 4}, 1, "out", "CONTEXT_KEY_LIMIT"),
        ({"a": "y" * 95, "b": "y" * 95, "c": "y" * 95}, "z" * 95, "out", "CONTEXT_SIZE_LIMIT"),
        ({}, {"x": {"y": 1}}, "out.deeper.still", "CONTEXT_NESTING_LIMIT"),
    ],
    ids=["value", "keys", "total", "depth"],
)
async def test_output_over_limit_fails_step(
    make: MakeEngine, context: dict[str, Any], value: Any, output_key: str, code: str
) -> None:
    @handler("emit")
    async def emit(ctx: Any) -> Result:
        return Result.success(value)

    flow = FlowBuilder("f").step("s", "emit", output_key=output_key).build()
    async with make([emit], [flow], options=OPTIONS) as engine:
        result = await engine.start("f", context)
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == code
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.context == context


async def test_output_limit_failure_is_routable(make: MakeEngine) -> None:
    @handler("emit")
    async def emit(ctx: Any) -> Result:
        return Result.success("x" * 500)

    flow = (
        FlowBuilder("f")
        .step("s", "emit", output_key="out", on_failure="r", on_success=None)
        .step("r", "noop")
        .build()
    )
    async with make([emit, noop], [flow], options=OPTIONS) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.last_error is not None
        assert result.execution.last_error.code == "CONTEXT_VALUE_TOO_LARGE"
        assert "out" not in result.execution.context


async def test_ctx_set_is_committed_with_the_step(make: MakeEngine) -> None:
    @handler("setter")
    async def setter(ctx: Any) -> Result:
        ctx.set("note", {"by": "handler"})
        ctx.set("a.b", "literal key")
        return Result.success()

    seen_ctx: list[Any] = []
    reader, seen_ctx = capture("reader", result=lambda ctx: Result.success(dict(ctx.context)))
    flow = FlowBuilder("f").step("s", "setter").step("r", "reader").build()
    async with make([setter, reader], [flow], options=OPTIONS) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        expected = {"note": {"by": "handler"}, "a.b": "literal key"}
        assert seen_ctx[0].context == expected
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.context == expected


async def test_ctx_set_over_limit_raises_in_handler(make: MakeEngine) -> None:
    caught: list[Exception] = []

    @handler("setter")
    async def setter(ctx: Any) -> Result:
        try:
            ctx.set("big", "x" * 500)
        except errors.ContextLimitError as exc:
            caught.append(exc)
        ctx.set("small", 1)
        return Result.success()

    flow = FlowBuilder("f").step("s", "setter").build()
    async with make([setter], [flow], options=OPTIONS) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert len(caught) == 1 and isinstance(caught[0], errors.ContextValueTooLargeError)
        assert result.execution.context == {"small": 1}


async def test_ctx_set_over_limit_uncaught_fails_with_limit_code(make: MakeEngine) -> None:
    @handler("setter")
    async def setter(ctx: Any) -> Result:
        ctx.set("k", "x" * 500)
        return Result.success()

    flow = FlowBuilder("f").step("s", "setter").build()
    async with make([setter], [flow], options=OPTIONS) as engine:
        result = await engine.start("f", {"a": 1})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "CONTEXT_VALUE_TOO_LARGE"
        before = await state(engine, result.execution.id)
        assert before[0]["context"] == {"a": 1}


async def test_ctx_set_key_limit(make: MakeEngine) -> None:
    @handler("setter")
    async def setter(ctx: Any) -> Result:
        for i in range(10):
            ctx.set(f"k{i}", i)
        return Result.success()

    flow = FlowBuilder("f").step("s", "setter").build()
    async with make([setter], [flow], options=OPTIONS) as engine:
        result = await engine.start("f", {})
        assert result.error is not None and result.error.code == "CONTEXT_KEY_LIMIT"

"""Retries (policy, delays, persistence, events) and step timeouts."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import ExecutionStatus, FlowBuilder, Result, handler
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import capture, noop


def flaky(fail_times: int, code: str = "FLAKY", **kw: Any) -> tuple[Any, list[Any]]:
    """Fails the first ``fail_times`` calls, then succeeds with the attempt number."""

    def result(ctx: Any) -> Result:
        if ctx.attempt <= fail_times:
            return Result.failure(code, f"attempt {ctx.attempt}", **kw)
        return Result.success({"attempt": ctx.attempt, "is_retry": ctx.is_retry})

    return capture("flaky", result=result)


def retry_flow(retry: dict[str, Any], **step: Any) -> Any:
    return (
        FlowBuilder("f")
        .step("s", "flaky", retry=retry, output_key="out", **step)
        .step("next", "noop")
        .build()
    )


async def test_immediate_retries_then_success(make: MakeEngine) -> None:
    h, seen = flaky(2)
    async with make([h, noop], [retry_flow({"maxAttempts": 3})]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert [c.attempt for c in seen] == [1, 2, 3]
        assert [c.is_retry for c in seen] == [False, True, True]
        assert result.execution.context["out"] == {"attempt": 3, "is_retry": True}
        history = result.execution.history
        assert [(r.step_id, r.attempt, r.outcome) for r in history] == [
            ("s", 1, "failure"),
            ("s", 2, "failure"),
            ("s", 3, "success"),
            ("next", 1, "success"),
        ]
        assert history[0].error is not None and history[0].error["code"] == "FLAKY"
        # Attempts are reset when the step is left.
        assert result.execution.retry_attempts == {}
        events = await engine.events(result.execution.id)
        retries = [e for e in events if e.type == "step.retry"]
        assert [e.data["attempt"] for e in retries] == [1, 2]
        assert all(e.data["backoff_ms"] == 0 for e in retries)
        assert retries[0].data["error"]["code"] == "FLAKY"


async def test_retries_exhausted_fail_with_last_error(make: MakeEngine) -> None:
    h, seen = flaky(99)
    async with make([h, noop], [retry_flow({"maxAttempts": 2})]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert len(seen) == 3
        assert result.error is not None
        assert (result.error.code, result.error.message) == ("FLAKY", "attempt 3")
        assert result.execution.step_count == 3
        assert result.execution.retry_attempts == {}


async def test_retries_exhausted_take_on_failure(make: MakeEngine) -> None:
    h, seen = flaky(99)
    flow = (
        FlowBuilder("f")
        .step("s", "flaky", retry={"maxAttempts": 1}, on_failure="rescue", on_success=None)
        .step("rescue", "noop")
        .build()
    )
    async with make([h, noop], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert len(seen) == 2
        assert result.execution.last_error is not None
        assert result.execution.last_error.message == "attempt 2"


async def test_exact_backoff_delays_are_durable_waits(make: MakeEngine, clock: FakeClock) -> None:
    h, seen = flaky(99)
    retry = {"maxAttempts": 4, "backoffMs": 100, "backoffMultiplier": 3, "maxBackoffMs": 1000}
    expected = [100, 300, 900, 1000]
    async with make([h, noop], [retry_flow(retry)]) as engine:
        result = await engine.start("f", {})
        execution_id = result.execution.id
        for index, delay in enumerate(expected):
            assert result.status is ExecutionStatus.WAITING
            assert result.wake_at == clock.now() + timedelta(milliseconds=delay)
            stored = await engine.get(execution_id)
            assert stored is not None
            assert stored.status is ExecutionStatus.WAITING
            assert stored.retry_attempts == {"s": index + 1}
            assert stored.wake_at == clock.now() + timedelta(milliseconds=delay)
            # Not before the delay...
            clock.advance(timedelta(milliseconds=delay - 1))
            assert (await engine.run(execution_id)).status is ExecutionStatus.WAITING
            assert len(seen) == index + 1
            # ...but right at it.
            clock.advance(timedelta(milliseconds=1))
            result = await engine.run(execution_id)
            assert len(seen) == index + 2
        assert result.status is ExecutionStatus.FAILED
        events = await engine.events(execution_id)
        assert [e.data["backoff_ms"] for e in events if e.type == "step.retry"] == expected


async def test_backoff_retry_through_tick_timers(make: MakeEngine, clock: FakeClock) -> None:
    h, seen = flaky(1)
    async with make([h, noop], [retry_flow({"maxAttempts": 1, "backoffMs": 5000})]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        clock.advance(5)
        assert await engine.tick_timers() == [execution_id]
        stored = await engine.get(execution_id)
        assert stored is not None and stored.status is ExecutionStatus.PENDING
        assert stored.current_step_id == "s"
        assert len(seen) == 1
        assert await engine.run_until_idle() == 1
        stored = await engine.get(execution_id)
        assert stored is not None and stored.status is ExecutionStatus.COMPLETED
        assert [c.attempt for c in seen] == [1, 2]


async def test_retry_on_filter(make: MakeEngine) -> None:
    h, seen = flaky(5, code="FATAL")
    async with make([h, noop], [retry_flow({"maxAttempts": 3, "retryOn": ["TIMEOUT"]})]) as e:
        result = await e.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert len(seen) == 1


async def test_retry_on_match(make: MakeEngine) -> None:
    h, seen = flaky(1, code="TIMEOUT")
    async with make([h, noop], [retry_flow({"maxAttempts": 3, "retryOn": ["TIMEOUT"]})]) as e:
        result = await e.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert len(seen) == 2


async def test_not_retryable_failure_is_not_retried(make: MakeEngine) -> None:
    h, seen = flaky(5, retryable=False)
    async with make([h, noop], [retry_flow({"maxAttempts": 3})]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert len(seen) == 1
        assert not [e for e in await engine.events(result.execution.id) if e.type == "step.retry"]


async def test_raised_exception_is_retried(make: MakeEngine) -> None:
    calls = 0

    @handler("raiser")
    async def raiser(ctx: Any) -> Result:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("reset")
        return Result.success()

    flow = FlowBuilder("f").step("s", "raiser", retry={"maxAttempts": 1}).build()
    async with make([raiser], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.history[0].error == {
            "code": "HANDLER_ERROR",
            "message": "reset",
            "details": {"exception": "ConnectionError"},
        }


async def test_jitter_adds_at_most_ten_percent(make: MakeEngine, clock: FakeClock) -> None:
    h, _ = flaky(1)
    retry = {"maxAttempts": 1, "backoffMs": 10_000, "jitter": True}
    async with make([h, noop], [retry_flow(retry)]) as engine:
        result = await engine.start("f", {})
        assert result.wake_at is not None
        delay = result.wake_at - clock.now()
        assert timedelta(seconds=10) <= delay <= timedelta(seconds=11)


async def test_attempts_reset_on_revisit(make: MakeEngine) -> None:
    def result(ctx: Any) -> Result:
        # Fail the first attempt of every visit.
        return Result.failure("X", "x") if ctx.attempt == 1 else Result.success()

    h, seen = capture("flaky", result=result)
    visits = 0

    @handler("again")
    async def again(ctx: Any) -> Result:
        nonlocal visits
        visits += 1
        return Result.success(next_step="s" if visits < 2 else None)

    flow = (
        FlowBuilder("f").step("s", "flaky", retry={"maxAttempts": 1}).step("back", "again").build()
    )
    async with make([h, again], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert [c.attempt for c in seen] == [1, 2, 1, 2]


# -- step timeouts ----------------------------------------------------------------------


async def test_async_step_timeout_cancels_handler(make: MakeEngine) -> None:
    never = asyncio.Event()
    outcome: list[str] = []

    @handler("hang")
    async def hang(ctx: Any) -> Result:
        try:
            await never.wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("finished")
        return Result.success()

    flow = FlowBuilder("f").step("s", "hang", timeout=50).build()
    async with make([hang], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "TIMEOUT"
        assert outcome == ["cancelled"]
        events = await engine.events(result.execution.id)
        timeouts = [e for e in events if e.type == "step.timeout"]
        assert len(timeouts) == 1
        assert timeouts[0].data["step_id"] == "s"
        assert timeouts[0].data["timeout_ms"] == pytest.approx(50)


async def test_step_timeout_is_retryable(make: MakeEngine) -> None:
    never = asyncio.Event()
    attempts: list[int] = []

    @handler("hang-once")
    async def hang_once(ctx: Any) -> Result:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            await never.wait()
        return Result.success({"attempt": ctx.attempt})

    flow = (
        FlowBuilder("f")
        .step(
            "s",
            "hang-once",
            timeout=50,
            output_key="out",
            retry={"maxAttempts": 1, "retryOn": ["TIMEOUT"]},
        )
        .build()
    )
    async with make([hang_once], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert attempts == [1, 2]
        assert result.execution.history[0].error is not None
        assert result.execution.history[0].error["code"] == "TIMEOUT"


async def test_sync_handler_timeout_discards_late_result(make: MakeEngine) -> None:
    release = threading.Event()
    finished = threading.Event()

    @handler("slow-sync")
    def slow(ctx: Any) -> Result:
        release.wait(10)
        finished.set()
        return Result.success({"late": True})

    flow = FlowBuilder("f").step("s", "slow-sync", timeout=50, output_key="out").build()
    async with make([slow], [flow]) as engine:
        result = await engine.start("f", {})
        release.set()
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "TIMEOUT"
        await asyncio.to_thread(finished.wait, 10)
        assert finished.is_set()
        stored = await engine.get(result.execution.id)
        assert stored is not None
        assert stored.status is ExecutionStatus.FAILED
        assert "out" not in stored.context
        types = [e.type for e in await engine.events(result.execution.id)]
        assert "step.timeout" in types


async def test_sync_handler_sees_cancelled_flag_on_timeout(make: MakeEngine) -> None:
    saw_flag = threading.Event()

    @handler("polite-sync")
    def polite(ctx: Any) -> Result:
        if ctx.cancelled.wait(10):
            saw_flag.set()
        return Result.success()

    flow = FlowBuilder("f").step("s", "polite-sync", timeout=50).build()
    async with make([polite], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.error is not None and result.error.code == "TIMEOUT"
        await asyncio.to_thread(saw_flag.wait, 10)
        assert saw_flag.is_set()

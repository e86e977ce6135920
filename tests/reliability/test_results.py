"""Issue 9, item 1: a step whose result cannot be recorded fails, once.

Every value a handler returns is checked before the commit; whatever still cannot be
committed becomes a recorded ``INVALID_RESULT`` failure that follows the usual failure
route; nothing is left ``running`` to be re-run on every lease expiry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowmonkey import EngineOptions, FlowBuilder, Result, handler
from flowmonkey.durations import MAX_DURATION, MAX_DURATION_MS
from flowmonkey.engine.result_check import check_result, clamp_delay_ms
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepError
from flowmonkey.stores.base import Store
from flowmonkey.testing import FakeClock
from reliability.conftest import MakeEngine

NAIVE = datetime(2030, 1, 1, 12, 0)

BAD_RESULTS: dict[str, Callable[[], Result]] = {
    "details-a-set": lambda: Result.failure("X", "x", details={"ids": {1, 2}}),
    "details-an-object": lambda: Result.failure("X", "x", details=object()),
    "details-nan": lambda: Result.failure("X", "x", details={"v": float("nan")}),
    "details-infinity": lambda: Result.failure("X", "x", details=[float("inf")]),
    "details-int-beyond-64-bits": lambda: Result.failure("X", "x", details=2**70),
    "details-non-string-key": lambda: Result.failure("X", "x", details={1: "a"}),
    "details-lone-surrogate": lambda: Result.failure("X", "x", details="\ud800"),
    "code-not-a-string": lambda: Result.failure(5, "x"),  # type: ignore[arg-type]
    "code-empty": lambda: Result.failure("", "x"),
    "retryable-not-a-bool": lambda: Result.failure("X", "x", retryable="no"),  # type: ignore[arg-type]
    "error-missing": lambda: Result(outcome="failure"),
    "wake-at-naive": lambda: Result.wait(wake_at=NAIVE),
    "wake-at-not-a-datetime": lambda: Result.wait(wake_at="tomorrow"),  # type: ignore[arg-type]
    "wake-at-too-far": lambda: Result.wait(wake_at=datetime(9999, 1, 1, tzinfo=UTC)),
    "delay-too-long": lambda: Result.wait(delay=timedelta(days=10**7)),
    "delay-seconds-too-long": lambda: Result.wait(delay=1e300),
    "delay-nan": lambda: Result.wait(delay=float("nan")),
    "delay-negative": lambda: Result.wait(delay=timedelta(seconds=-1)),
    "delay-a-string": lambda: Result(outcome="wait", delay="5s"),  # type: ignore[arg-type]
    "reason-not-a-string": lambda: Result.wait(reason=123),  # type: ignore[arg-type]
    "reason-nul": lambda: Result.wait(reason="a\x00b"),
    "port-a-list": lambda: Result.success(port=["a"]),  # type: ignore[arg-type]
    "next-step-a-list": lambda: Result.success(next_step=["a"]),
    "next-step-a-number": lambda: Result.success(next_step=7),
    "unknown-outcome": lambda: Result(outcome="maybe"),
}


def _flow(*, on_failure: str | None = None, retry: dict[str, Any] | None = None) -> Any:
    builder = FlowBuilder("f").step(
        "pay", "pay", on_failure=on_failure, retry=retry, ports={"a": "done"}
    )
    builder.step("done", "noop")
    if on_failure is not None:
        builder.step("recover", "noop")
    return builder.build()


@handler("noop")
async def noop(ctx: Any) -> Result:
    return Result.success()


@pytest.mark.parametrize("name", sorted(BAD_RESULTS))
async def test_a_result_that_cannot_be_recorded_fails_the_step_once(
    make: MakeEngine, clock: FakeClock, name: str
) -> None:
    calls = 0

    @handler("pay")
    async def pay(ctx: Any) -> Result:
        nonlocal calls
        calls += 1
        return BAD_RESULTS[name]()

    flow = _flow(retry={"maxAttempts": 3, "backoffMs": 0})
    async with make([pay, noop], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "INVALID_RESULT"
        assert result.error.step_id == "pay"
        # Not retryable: the retry policy does not run the side effect again.
        assert calls == 1
        # Nothing is left to claim, even after any lease would have expired.
        clock.advance(timedelta(hours=1))
        assert await engine.run_until_idle() == 0
        assert calls == 1
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.status is ExecutionStatus.FAILED
        assert [(h.step_id, h.outcome, (h.error or {}).get("code")) for h in stored.history] == [
            ("pay", "failure", "INVALID_RESULT")
        ]
        types = [e.type for e in await engine.events(result.execution.id)]
        assert types[-2:] == ["step.failed", "execution.failed"]


async def test_invalid_result_follows_the_failure_route(make: MakeEngine) -> None:
    @handler("pay")
    async def pay(ctx: Any) -> Result:
        return Result.wait(wake_at=NAIVE)

    async with make([pay, noop], [_flow(on_failure="recover")]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        stored = await engine.get(result.execution.id)
        assert stored is not None
        assert [h.step_id for h in stored.history] == ["pay", "recover"]
        assert stored.last_error is not None and stored.last_error.code == "INVALID_RESULT"
        assert "naive" in stored.last_error.message


async def test_a_valid_wait_and_port_still_work(make: MakeEngine, clock: FakeClock) -> None:
    outcomes = [
        Result.wait(delay=MAX_DURATION, reason="later"),
        Result.success(port="a"),
    ]

    @handler("pay")
    async def pay(ctx: Any) -> Result:
        return outcomes.pop(0)

    options = EngineOptions(execution_timeout=None)
    async with make([pay, noop], [_flow()], options=options) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.WAITING
        assert result.wake_at == clock.now() + MAX_DURATION
        clock.advance(MAX_DURATION)
        await engine.tick_timers()
        assert (await engine.run(result.execution.id)).status is ExecutionStatus.COMPLETED


async def test_a_commit_the_store_refuses_fails_the_step_once(
    make: MakeEngine, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a store raises while writing a step's outcome (here injected: a
    serialisation error on the commit holding the step's result) is recorded as an
    INVALID_RESULT failure of that step, and the side effect is not repeated."""
    calls = 0

    @handler("pay")
    async def pay(ctx: Any) -> Result:
        nonlocal calls
        calls += 1
        ctx.set("charged", True)
        return Result.success({"receipt": 1})

    real_commit = store.commit
    refused = 0

    async def commit(lease: Any, delta: Any) -> None:
        nonlocal refused
        if any(e.type == "step.completed" for e in delta.events):
            refused += 1
            raise TypeError("Type is not JSON serializable: Receipt")
        await real_commit(lease, delta)

    monkeypatch.setattr(store, "commit", commit)
    monkeypatch.setattr(store, "commit_many", None, raising=False)
    flow = FlowBuilder("f").step("pay", "pay", output_key="out").step("done", "noop").build()
    async with make([pay, noop], [flow]) as engine:
        result = await engine.start("f", {"keep": 1})
        assert result.status is ExecutionStatus.FAILED, result
        assert result.error is not None and result.error.code == "INVALID_RESULT"
        assert "Receipt" in result.error.message
        assert calls == 1 and refused == 1
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.status is ExecutionStatus.FAILED
        # The refused commit left nothing behind: no output, no ctx.set, one record.
        assert stored.context == {"keep": 1}
        assert [(h.step_id, h.outcome) for h in stored.history] == [("pay", "failure")]
        clock.advance(timedelta(hours=1))
        assert await engine.run_until_idle() == 0
        assert calls == 1


async def test_a_huge_backoff_is_clamped_at_run_time(make: MakeEngine, clock: FakeClock) -> None:
    """A policy validation accepts can still compute a backoff beyond any datetime
    (``1e300 ** 2`` overflows): it is clamped to MAX_DURATION instead of crashing."""

    @handler("pay")
    async def pay(ctx: Any) -> Result:
        return Result.failure("DECLINED", "declined")

    retry = {
        "maxAttempts": 3, "backoffMs": 1, "backoffMultiplier": 1e300,
        "maxBackoffMs": MAX_DURATION_MS,
    }  # fmt: skip
    options = EngineOptions(execution_timeout=None)
    async with make([pay, noop], [_flow(retry=retry)], options=options) as engine:
        result = await engine.start("f", {})
        execution_id = result.execution.id
        waits = []
        for _ in range(3):
            assert result.status is ExecutionStatus.WAITING, result.error
            assert result.wake_at is not None
            waits.append(result.wake_at - clock.now())
            clock.advance(result.wake_at - clock.now())
            await engine.tick_timers()
            result = await engine.run(execution_id)
        assert waits == [timedelta(milliseconds=1), MAX_DURATION, MAX_DURATION]
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "DECLINED"


async def test_a_huge_wait_timeout_is_clamped(make: MakeEngine, clock: FakeClock) -> None:
    """EngineOptions are not validated like flows: a wait timeout beyond any datetime
    is clamped to MAX_DURATION when the wait starts."""
    flow = FlowBuilder("f").step("w", "waitForSignal").build()
    options = EngineOptions(wait_timeout=timedelta(days=10**6), execution_timeout=None)
    async with make([], [flow], options=options) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.WAITING
        stored = await engine.get(result.execution.id)
        assert stored is not None
        assert stored.tokens[0].wait_deadline_at == clock.now() + MAX_DURATION


def test_check_result_normalises_a_message_and_keeps_good_results() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    good = Result.wait(wake_at=now + timedelta(days=1), reason="r")
    assert check_result(good, now) is good
    odd = Result(outcome="failure", error=StepError(code="X", message=42))  # type: ignore[arg-type]
    fixed = check_result(odd, now)
    assert fixed.error is not None and fixed.error.message == "42"
    assert fixed.error.code == "X"
    repaired = check_result(Result.failure("X", "a\x00b\ud800"), now)
    assert repaired.error is not None and repaired.error.code == "X"
    assert repaired.error.message == "a\ufffdb?"


def test_clamp_delay_ms() -> None:
    assert clamp_delay_ms(5.0) == 5.0
    assert clamp_delay_ms(-1.0) == 0.0
    assert clamp_delay_ms(float("nan")) == MAX_DURATION_MS
    assert clamp_delay_ms(1e300) == MAX_DURATION_MS


async def test_handler_raising_cancelled_error_is_a_recorded_failure(make: MakeEngine) -> None:
    calls = 0

    @handler("pay")
    async def pay(ctx: Any) -> Result:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError()

    @handler("pay_later")
    async def pay_later(ctx: Any) -> Result:
        await asyncio.sleep(0)
        raise asyncio.CancelledError()

    flow = FlowBuilder("f").step("pay", "pay").build()
    later = FlowBuilder("g").step("pay", "pay_later").build()
    async with make([pay, pay_later], [flow, later]) as engine:
        for flow_id in ("f", "g"):
            result = await engine.start(flow_id, {})
            assert result.status is ExecutionStatus.FAILED
            assert result.error is not None and result.error.code == "HANDLER_ERROR"
            assert "CancelledError" in result.error.message
        assert calls == 1


async def test_a_real_cancellation_still_propagates(make: MakeEngine) -> None:
    """Cancelling the task that drives an execution (a worker shutting down) is not a
    step failure: nothing is recorded and the execution stays for the next run."""
    entered = asyncio.Event()

    @handler("pay")
    async def pay(ctx: Any) -> Result:
        entered.set()
        await asyncio.Event().wait()
        return Result.success()

    flow = FlowBuilder("f").step("pay", "pay").build()
    async with make([pay], [flow]) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        task = asyncio.create_task(engine.run(execution_id))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stored = await engine.get(execution_id)
        assert stored is not None
        assert stored.status is ExecutionStatus.RUNNING
        assert stored.history == []


async def test_options_document_the_defaults() -> None:
    options = EngineOptions()
    assert options.max_step_recoveries == 5
    assert options.sync_queue_timeout == timedelta(minutes=5)


async def test_a_refused_branch_commit_fails_that_branch_once(
    make: MakeEngine, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a parallel run the refused commit of one branch step is recorded as that
    step's INVALID_RESULT failure; its onFailure route runs, the other branch is kept."""
    calls: dict[str, int] = {"good": 0, "bad": 0}

    @handler("work")
    async def work(ctx: Any) -> Result:
        calls[ctx.step.id] += 1
        await asyncio.sleep(0)  # both branches are in flight together
        return Result.success(ctx.step.id)

    real_commit = store.commit

    async def commit(lease: Any, delta: Any) -> None:
        if any(e.type == "step.completed" and e.data["step_id"] == "bad" for e in delta.events):
            raise ValueError("cannot encode the output of bad")
        await real_commit(lease, delta)

    monkeypatch.setattr(store, "commit", commit)
    monkeypatch.setattr(store, "commit_many", None, raising=False)
    flow = (
        FlowBuilder("par")
        .parallel("fork", ["good", "bad"])
        .step("good", "work", output_key="good", on_success="join")
        .step("bad", "work", output_key="bad", on_success="join", on_failure="handled")
        .step("handled", "work2", on_success="join")
        .join("join")
        .build()
    )

    @handler("work2")
    async def work2(ctx: Any) -> Result:
        return Result.success()

    async with make([work, work2], [flow]) as engine:
        result = await engine.start("par", {})
        assert result.status is ExecutionStatus.COMPLETED, result.error
        stored = await engine.get(result.execution.id)
        assert stored is not None
        assert stored.context.get("good") == "good" and "bad" not in stored.context
        bad = [h for h in stored.history if h.step_id == "bad"]
        assert [(h.outcome, (h.error or {}).get("code")) for h in bad] == [
            ("failure", "INVALID_RESULT")
        ]
        assert calls["bad"] == 1
        assert calls["good"] in (1, 2)  # good ran again only if its commit was cut

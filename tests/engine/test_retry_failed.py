"""``Engine.retry``: a failed execution continues from the step that failed."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import ExecutionStatus, FlowBuilder, Result, errors
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import capture, noop, wait_forever


def _flow() -> Any:
    return (
        FlowBuilder("f")
        .step("first", "counter", output_key="first")
        .step("charge", "charge", retry={"maxAttempts": 2}, output_key="charged")
        .step("last", "noop")
        .build()
    )


def _handlers(fail_until: int) -> tuple[list[Any], list[Any], list[Any]]:
    """``first`` counts its runs; ``charge`` fails its first ``fail_until`` calls."""

    def charge(ctx: Any) -> Result:
        if len(charged) <= fail_until:
            return Result.failure("DECLINED", f"call {len(charged)}")
        return Result.success({"ok": True, "attempt": ctx.attempt, "first": ctx.context["first"]})

    first, firsts = capture("counter", result=lambda ctx: Result.success({"n": 1}))
    charger, charged = capture("charge", result=charge)
    return [first, charger, noop], firsts, charged


async def test_retry_runs_the_failed_step_again_with_fresh_attempts(
    make: MakeEngine, clock: FakeClock
) -> None:
    handlers, firsts, charged = _handlers(fail_until=3)
    async with make(handlers, [_flow()]) as engine:
        failed = await engine.start("f", {"order": 7})
        assert failed.status is ExecutionStatus.FAILED
        attempts = [c.attempt for c in charged]
        assert attempts == [1, 2, 3]  # every attempt of the policy used up
        clock.advance(5)
        result = await engine.retry(failed.execution.id)
        assert result.status is ExecutionStatus.COMPLETED
        execution = result.execution
        assert len(firsts) == 1, "steps before the failed one do not run again"
        assert [c.attempt for c in charged] == [1, 2, 3, 1], "the attempts were reset"
        assert execution.context["order"] == 7
        assert execution.context["charged"] == {"ok": True, "attempt": 1, "first": {"n": 1}}
        assert execution.run_number == failed.execution.run_number + 1
        assert execution.error is None
        assert execution.last_error is not None and execution.last_error.code == "DECLINED"
        events = await engine.events(execution.id)
        retried = [e for e in events if e.type == "execution.retried"]
        assert len(retried) == 1
        assert retried[0].data["step_id"] == "charge"
        assert retried[0].data["run_number"] == execution.run_number
        assert retried[0].data["previous_error"]["code"] == "DECLINED"
        types = [e.type for e in events]
        assert types.index("execution.failed") < types.index("execution.retried")
        assert types[-1] == "execution.completed"


async def test_retry_without_running_leaves_it_pending(make: MakeEngine) -> None:
    handlers, _, charged = _handlers(fail_until=3)
    async with make(handlers, [_flow()]) as engine:
        failed = await engine.start("f", {})
        result = await engine.retry(failed.execution.id, run_next=False)
        assert result.status is ExecutionStatus.PENDING
        assert len(charged) == 3
        stored = await engine.get(failed.execution.id)
        assert stored is not None and stored.status is ExecutionStatus.PENDING
        finished = await engine.run(failed.execution.id)
        assert finished.status is ExecutionStatus.COMPLETED


async def test_a_retry_that_fails_again_is_failed_and_retryable(make: MakeEngine) -> None:
    handlers, _, charged = _handlers(fail_until=10)
    async with make(handlers, [_flow()]) as engine:
        failed = await engine.start("f", {})
        again = await engine.retry(failed.execution.id)
        assert again.status is ExecutionStatus.FAILED
        assert len(charged) == 6
        third = await engine.retry(failed.execution.id)
        assert third.execution.run_number == failed.execution.run_number + 2


async def test_anything_but_failed_is_refused_and_unchanged(make: MakeEngine) -> None:
    handlers, _, _ = _handlers(fail_until=0)
    wait_flow = FlowBuilder("w").step("hold", "wait").step("after", "noop").build()
    async with make([*handlers, wait_forever], [_flow(), wait_flow]) as engine:
        done = await engine.start("f", {})
        assert done.status is ExecutionStatus.COMPLETED
        with pytest.raises(errors.ExecutionNotFailed) as caught:
            await engine.retry(done.execution.id)
        assert caught.value.code == "EXECUTION_NOT_FAILED"
        assert "completed" in caught.value.message
        waiting = await engine.start("w", {})
        with pytest.raises(errors.ExecutionNotFailed):
            await engine.retry(waiting.execution.id)
        cancelled = await engine.cancel(waiting.execution.id)
        with pytest.raises(errors.ExecutionNotFailed):
            await engine.retry(cancelled.execution.id)
        stored = await engine.get(done.execution.id)
        assert stored is not None and stored.run_number == done.execution.run_number
        events = await engine.events(done.execution.id)
        assert not [e for e in events if e.type == "execution.retried"]
        with pytest.raises(errors.ExecutionNotFound):
            await engine.retry("nope")

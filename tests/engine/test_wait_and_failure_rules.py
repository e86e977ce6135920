"""Rules found while documenting: token lifetime per visit, final failures, onTimeout for
step timeouts, failed attempts leave no context writes, refused flow versions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowmonkey import FlowBuilder, Result, errors, handler
from flowmonkey.handlers.context import HandlerContext
from flowmonkey.model.execution import ExecutionStatus

from .conftest import MakeEngine


async def test_a_token_minted_for_one_visit_cannot_resume_a_later_visit(make: MakeEngine) -> None:
    minted: list[str] = []

    @handler("ask")
    async def ask(ctx: HandlerContext) -> Result:
        if ctx.context.get("resumeData") and len(minted) >= 2:
            return Result.success("done")
        minted.append(ctx.create_resume_token())
        return Result.wait(reason="answer")

    # ask -> (resume) -> ask again: the second visit mints a new token
    flow = FlowBuilder("loop").step("ask", "ask", on_resume="ask", on_success=None).build()
    async with make([ask], [flow]) as engine:
        started = await engine.start("loop", {})
        assert started.status is ExecutionStatus.WAITING
        first_token = minted[0]
        # resumed by a trusted caller without the token: the first token dies with its wait
        again = await engine.resume(started.execution.id, {"n": 1})
        assert again.status is ExecutionStatus.WAITING and len(minted) == 2
        with pytest.raises(errors.InvalidResumeToken):
            await engine.resume_by_token(first_token, {"n": 2})
        done = await engine.resume_by_token(minted[1], {"n": 3})
        assert done.status is ExecutionStatus.COMPLETED


async def test_handler_declared_not_retryable_is_not_retried(make: MakeEngine) -> None:
    calls: list[int] = []

    @handler("final", retryable=False)
    async def final(ctx: HandlerContext) -> Result:
        calls.append(ctx.attempt)
        return Result.failure("NOPE", "never works")

    flow = FlowBuilder("f").step("s", "final", retry={"maxAttempts": 3}).build()
    async with make([final], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "NOPE"
        assert calls == [1]


async def test_a_timed_out_step_follows_on_timeout(make: MakeEngine) -> None:
    never = asyncio.Event()

    @handler("slow")
    async def slow(ctx: HandlerContext) -> Result:
        await never.wait()
        return Result.success()

    @handler("mark")
    async def mark(ctx: HandlerContext) -> Any:
        return "timed out path"

    flow = (
        FlowBuilder("t")
        .step("s", "slow", timeout=50, on_timeout="late", on_failure="broken")
        .step("late", "mark", output_key="path", on_success=None)
        .step("broken", "mark", output_key="other", on_success=None)
        .build()
    )
    async with make([slow, mark], [flow]) as engine:
        result = await engine.start("t", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert result.context == {"path": "timed out path"}
        assert result.execution.last_error is not None
        assert result.execution.last_error.code == "TIMEOUT"


async def test_a_failed_attempt_leaves_no_context_writes(make: MakeEngine) -> None:
    @handler("flaky")
    async def flaky(ctx: HandlerContext) -> Result:
        ctx.set(f"attempt{ctx.attempt}", True)
        ctx.set("shared", ctx.attempt)
        if ctx.attempt < 3:
            return Result.failure("AGAIN", "try again")
        return Result.success()

    flow = FlowBuilder("f").step("s", "flaky", retry={"maxAttempts": 3}).build()
    async with make([flaky], [flow]) as engine:
        result = await engine.start("f", {"shared": 0})
        assert result.status is ExecutionStatus.COMPLETED
        assert result.context == {"shared": 3, "attempt3": True}
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.context == {"shared": 3, "attempt3": True}


async def test_a_context_limit_hit_by_ctx_set_is_not_retried(make: MakeEngine) -> None:
    from flowmonkey import ContextLimits, EngineOptions

    calls: list[int] = []

    @handler("big")
    async def big(ctx: HandlerContext) -> Result:
        calls.append(ctx.attempt)
        ctx.set("blob", "x" * 1000)
        return Result.success()

    flow = FlowBuilder("f").step("s", "big", retry={"maxAttempts": 3}).build()
    options = EngineOptions(context_limits=ContextLimits(max_value_bytes=100))
    async with make([big], [flow], options=options) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "CONTEXT_VALUE_TOO_LARGE"
        assert calls == [1]


async def test_a_refused_flow_version_is_not_registered(make: MakeEngine) -> None:
    @handler("a")
    async def a(ctx: HandlerContext) -> Result:
        return Result.success("a")

    v1 = FlowBuilder("f", version="1.0.0").step("s", "a", output_key="out").build()
    other = FlowBuilder("f", version="1.0.0").step("s", "a", output_key="changed").build()
    async with make([a], []) as engine:
        assert await engine.save_flow(v1) is True
        with pytest.raises(errors.FlowValidationError):
            await engine.save_flow(other)
        assert engine.flows.get("f", "1.0.0") == v1
        result = await engine.start("f", {})
        assert result.context == {"out": "a"}


async def test_resume_and_signal_can_leave_the_next_steps_to_a_worker(make: MakeEngine) -> None:
    ran: list[str] = []

    @handler("park")
    async def park(ctx: HandlerContext) -> Result:
        return Result.wait(reason="outside")

    @handler("after")
    async def after(ctx: HandlerContext) -> Result:
        ran.append(ctx.step.id)
        return Result.success()

    flow = (
        FlowBuilder("h")
        .step("w", "park", on_resume="next", ports={"go": "next"})
        .step("next", "after", on_success=None)
        .build()
    )
    async with make([park, after], [flow]) as engine:
        for how in ("resume", "signal"):
            started = await engine.start("h", {})
            eid = started.execution.id
            if how == "resume":
                handed = await engine.resume(eid, {"x": 1}, run_next=False)
            else:
                handed = await engine.signal(eid, "w", port="go", payload={"x": 1}, run_next=False)
            assert handed.status is ExecutionStatus.PENDING
            assert ran == []
            stored = await engine.get(eid)
            assert stored is not None and stored.status is ExecutionStatus.PENDING
            assert stored.current_step_id == "next"
            # the lease is free: any worker (here run_until_idle) takes it from there
            assert await engine.run_until_idle() == 1
            assert ran == ["next"]
            done = await engine.get(eid)
            assert done is not None and done.status is ExecutionStatus.COMPLETED
            ran.clear()


async def test_ctx_set_is_undone_when_the_output_cannot_be_stored(make: MakeEngine) -> None:
    @handler("writes")
    async def writes(ctx: HandlerContext) -> Result:
        ctx.set("side", "written")
        return Result.success({"n": 1})

    # outputKey goes through "flat", which is a string: the output cannot be stored
    flow = FlowBuilder("f").step("s", "writes", output_key="flat.n").build()
    async with make([writes], [flow]) as engine:
        result = await engine.start("f", {"flat": "not an object"})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "INPUT_ERROR"
        assert result.context == {"flat": "not an object"}
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.context == {"flat": "not an object"}

"""Transitions: onSuccess chains, overrides, ports, onFailure, unknown handlers, max steps."""

from __future__ import annotations

from typing import Any

from flowmonkey import EngineOptions, ExecutionStatus, FlowBuilder, FlowMonkeyError, Result, handler
from flowmonkey.model.flow import Flow, Step, Transitions

from .conftest import MakeEngine
from .support import UncheckedFlows, boom, capture, noop


def path_of(execution: Any) -> list[str]:
    return [record.step_id for record in execution.history]


async def test_on_success_chain_then_complete(make: MakeEngine) -> None:
    flow = FlowBuilder("f").step("a", "noop").step("b", "noop").step("c", "noop").build()
    async with make([noop], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert path_of(result.execution) == ["a", "b", "c"]
        assert result.execution.step_count == 3
        assert result.execution.error is None
        assert result.execution.finished_at is not None


async def test_null_on_success_completes(make: MakeEngine) -> None:
    flow = FlowBuilder("f").step("a", "noop", on_success=None).step("b", "noop").build()
    async with make([noop], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert path_of(result.execution) == ["a"]


def override_flow() -> Flow:
    return (
        FlowBuilder("f")
        .step("a", "jump")
        .step("b", "noop", on_success=None)
        .step("c", "noop", on_success=None)
        .build()
    )


async def test_next_step_override_wins(make: MakeEngine) -> None:
    jump, _ = capture("jump", result=lambda ctx: Result.success(next_step="c"))
    async with make([jump, noop], [override_flow()]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert path_of(result.execution) == ["a", "c"]


async def test_next_step_none_completes(make: MakeEngine) -> None:
    jump, _ = capture("jump", result=lambda ctx: Result.success({"v": 1}, next_step=None))
    async with make([jump, noop], [override_flow()]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert path_of(result.execution) == ["a"]


async def test_next_step_unknown_is_invalid_transition(make: MakeEngine) -> None:
    jump, _ = capture("jump", result=lambda ctx: Result.success(next_step="nowhere"))
    async with make([jump, noop], [override_flow()]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "INVALID_TRANSITION"


def port_flow() -> Flow:
    return (
        FlowBuilder("f")
        .step("decide", "decide", ports={"approve": "ship", "reject": "refund"})
        .step("ship", "noop", on_success=None)
        .step("refund", "noop", on_success=None)
        .build()
    )


async def test_port_selects_target(make: MakeEngine) -> None:
    decide, _ = capture("decide", result=lambda ctx: Result.success(port=ctx.input["port"]))
    async with make([decide, noop], [port_flow()]) as engine:
        approve = await engine.start("f", {"port": "approve"})
        reject = await engine.start("f", {"port": "reject"})
        assert approve.status is ExecutionStatus.COMPLETED
        assert path_of(approve.execution) == ["decide", "ship"]
        assert path_of(reject.execution) == ["decide", "refund"]


async def test_unknown_port_is_invalid_transition(make: MakeEngine) -> None:
    decide, _ = capture("decide", result=lambda ctx: Result.success(port="maybe"))
    async with make([decide, noop], [port_flow()]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None
        assert result.error.code == "INVALID_TRANSITION"
        assert result.error.step_id == "decide"
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.status is ExecutionStatus.FAILED


async def test_on_failure_route_sets_last_error_and_continues(make: MakeEngine) -> None:
    recover, seen = capture("recover", result=lambda ctx: Result.success(None))
    flow = (
        FlowBuilder("f")
        .step("charge", "boom", on_failure="recover", on_success=None)
        .step("recover", "recover", on_success=None)
        .build()
    )
    async with make([boom, recover], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.error is None
        last = result.execution.last_error
        assert last is not None
        assert (last.code, last.message, last.step_id) == ("BOOM", "it broke", "charge")
        assert last.details == {"n": 1}
        assert last.at is not None
        # The recovery step can read it from its execution snapshot.
        assert seen[0].execution.last_error is not None
        assert seen[0].execution.last_error.code == "BOOM"
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.last_error == last


async def test_no_on_failure_fails_execution(make: MakeEngine) -> None:
    flow = FlowBuilder("f").step("a", "noop").step("b", "boom").build()
    async with make([noop, boom], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        err = result.execution.error
        assert err is not None
        assert (err.code, err.message, err.step_id) == ("BOOM", "it broke", "b")
        stored = await engine.get(result.execution.id)
        assert stored is not None and stored.error is not None and stored.error.code == "BOOM"
        assert stored.finished_at is not None


async def test_unknown_handler_fails_when_reached(make: MakeEngine) -> None:
    flow = FlowBuilder("f").step("a", "noop").step("b", "not-registered").build()
    async with make([noop], [flow]) as engine:
        created = await engine.create("f", {})
        assert created.created
        result = await engine.run(created.execution.id)
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None
        assert result.error.code == "HANDLER_NOT_FOUND"
        assert result.error.step_id == "b"
        # "a" ran; the pre-handler failure of "b" records no attempt.
        assert path_of(result.execution) == ["a"]
        assert result.execution.step_count == 1


async def test_unknown_target_in_definition_is_invalid_transition(make: MakeEngine) -> None:
    flow = Flow(
        id="bad",
        version="1.0.0",
        initial_step_id="a",
        steps={"a": Step(id="a", type="noop", transitions=Transitions(on_success="ghost"))},
    )
    engine = make([noop])
    engine.flows = UncheckedFlows([flow])
    async with engine:
        result = await engine.start("bad", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "INVALID_TRANSITION"


async def test_max_steps(make: MakeEngine) -> None:
    calls = 0

    @handler("loop")
    async def loop(ctx: Any) -> Result:
        nonlocal calls
        calls += 1
        return Result.success(next_step="s")

    flow = FlowBuilder("f").step("s", "loop").build()
    async with make([loop], [flow], options=EngineOptions(max_steps=5)) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "MAX_STEPS"
        assert calls == 5
        assert result.execution.step_count == 5


async def test_max_steps_counts_retries(make: MakeEngine) -> None:
    flow = FlowBuilder("f").step("s", "boom", retry={"maxAttempts": 10}).build()
    async with make([boom], [flow], options=EngineOptions(max_steps=3)) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "MAX_STEPS"
        assert len(result.execution.history) == 3


async def test_raising_handler_is_handler_error(make: MakeEngine) -> None:
    @handler("raises")
    async def raises(ctx: Any) -> Result:
        raise RuntimeError("disk on fire")

    async with make([raises], [FlowBuilder("f").step("s", "raises").build()]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None
        assert result.error.code == "HANDLER_ERROR"
        assert result.error.message == "disk on fire"


async def test_raising_sync_handler_is_handler_error(make: MakeEngine) -> None:
    @handler("raises-sync")
    def raises(ctx: Any) -> Result:
        raise ValueError("bad value")

    async with make([raises], [FlowBuilder("f").step("s", "raises-sync").build()]) as engine:
        result = await engine.start("f", {})
        assert result.error is not None
        assert (result.error.code, result.error.message) == ("HANDLER_ERROR", "bad value")


async def test_raising_after_await_is_handler_error(make: MakeEngine) -> None:
    import asyncio

    @handler("raises-later")
    async def raises(ctx: Any) -> Result:
        await asyncio.sleep(0)
        raise KeyError("k")

    async with make([raises], [FlowBuilder("f").step("s", "raises-later").build()]) as engine:
        result = await engine.start("f", {})
        assert result.error is not None and result.error.code == "HANDLER_ERROR"


async def test_raised_flowmonkey_error_keeps_code(make: MakeEngine) -> None:
    @handler("raises-fm")
    async def raises(ctx: Any) -> Result:
        raise FlowMonkeyError("quota exceeded", code="QUOTA")

    async with make([raises], [FlowBuilder("f").step("s", "raises-fm").build()]) as engine:
        result = await engine.start("f", {})
        assert result.error is not None
        assert (result.error.code, result.error.message) == ("QUOTA", "quota exceeded")


async def test_plain_return_value_is_success_output(make: MakeEngine) -> None:
    @handler("plain")
    def plain(ctx: Any) -> Any:
        return {"v": 3}

    flow = FlowBuilder("f").step("s", "plain", output_key="out").build()
    async with make([plain], [flow]) as engine:
        result = await engine.start("f", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.context == {"out": {"v": 3}}

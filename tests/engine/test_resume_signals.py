"""resume, resume tokens and signals (SEMANTICS.md "Waiting, resume, signals, timers")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import ContextLimits, EngineOptions, ExecutionStatus, FlowBuilder, Result, errors
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import capture, noop, state, wait_forever


def approval_flow() -> Any:
    return (
        FlowBuilder("f")
        .step("w", "wait", output_key="answer.data", on_success="after")
        .step("after", "noop")
        .build()
    )


async def test_resume_stores_resume_data_and_output_key(make: MakeEngine) -> None:
    async with make([wait_forever, noop], [approval_flow()]) as engine:
        execution_id = (await engine.start("f", {"x": 1})).execution.id
        result = await engine.resume(execution_id, {"approved": True})
        assert result.status is ExecutionStatus.COMPLETED
        expected = {
            "x": 1,
            "resumeData": {"approved": True},
            "answer": {"data": {"approved": True}},
        }
        assert result.execution.context == expected
        stored = await engine.get(execution_id)
        assert stored is not None and stored.context == expected
        assert [r.step_id for r in stored.history] == ["w", "after"]
        types = [e.type for e in await engine.events(execution_id)]
        assert "execution.resumed" in types


async def test_resume_not_waiting(make: MakeEngine) -> None:
    async with make([wait_forever, noop], [approval_flow()]) as engine:
        created = await engine.create("f", {})
        before = await state(engine, created.execution.id)
        with pytest.raises(errors.ExecutionNotWaiting):
            await engine.resume(created.execution.id, {"a": 1})
        # A refused resume changes nothing (the execution is still pending).
        assert await state(engine, created.execution.id) == before
        done_id = (await engine.start("f", {})).execution.id
        await engine.resume(done_id, None)
        with pytest.raises(errors.ExecutionNotWaiting):
            await engine.resume(done_id, {"a": 1})


async def test_resume_pending_then_run_still_works(make: MakeEngine) -> None:
    async with make([wait_forever, noop], [approval_flow()]) as engine:
        created = await engine.create("f", {})
        with pytest.raises(errors.ExecutionNotWaiting):
            await engine.resume(created.execution.id, {})
        result = await engine.run(created.execution.id)
        assert result.status is ExecutionStatus.WAITING


async def test_refused_resume_leaves_pending_execution_runnable(make: MakeEngine) -> None:
    async with make([wait_forever, noop], [approval_flow()]) as engine:
        created = await engine.create("f", {})
        with pytest.raises(errors.ExecutionNotWaiting):
            await engine.resume(created.execution.id, {})
        with pytest.raises(errors.InvalidSignal):
            await engine.signal(created.execution.id, "w")
        stored = await engine.get(created.execution.id)
        assert stored is not None and stored.status is ExecutionStatus.PENDING
        # A worker pass still finds it.
        assert await engine.run_until_idle() == 1


async def test_resume_unknown_id(make: MakeEngine) -> None:
    async with make([wait_forever], [approval_flow()]) as engine:
        with pytest.raises(errors.ExecutionNotFound):
            await engine.resume("no-such-id", {})


async def test_resume_data_over_limit_changes_nothing(make: MakeEngine) -> None:
    options = EngineOptions(context_limits=ContextLimits(max_value_bytes=100))
    async with make([wait_forever, noop], [approval_flow()], options=options) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        before = await state(engine, execution_id)
        with pytest.raises(errors.ContextValueTooLargeError):
            await engine.resume(execution_id, {"blob": "x" * 500})
        assert await state(engine, execution_id) == before
        # It is still resumable with acceptable data.
        result = await engine.resume(execution_id, {"ok": 1})
        assert result.status is ExecutionStatus.COMPLETED


# -- resume tokens ----------------------------------------------------------------------


def token_handler(tokens: list[str], expires_in: timedelta | None = None) -> Any:
    def result(ctx: Any) -> Result:
        if expires_in is None:
            tokens.append(ctx.create_resume_token())
        else:
            tokens.append(ctx.create_resume_token(expires_in=expires_in))
        return Result.wait(reason="approval")

    return capture("ask", result=result)[0]


def token_flow(on_success: str | None = "after") -> Any:
    return (
        FlowBuilder("f")
        .step("ask", "ask", output_key="decision", on_success=on_success)
        .step("after", "noop")
        .build()
    )


async def test_resume_by_token(make: MakeEngine) -> None:
    tokens: list[str] = []
    async with make([token_handler(tokens), noop], [token_flow()]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        assert len(tokens) == 1
        result = await engine.resume_by_token(tokens[0], {"ok": True})
        assert result.execution.id == execution_id
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.context["decision"] == {"ok": True}
        assert result.execution.context["resumeData"] == {"ok": True}


async def test_resume_with_token_checks_it(make: MakeEngine) -> None:
    tokens: list[str] = []
    async with make([token_handler(tokens), noop], [token_flow()]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        result = await engine.resume(execution_id, {"ok": 1}, token=tokens[0])
        assert result.status is ExecutionStatus.COMPLETED


async def test_token_is_single_use(make: MakeEngine) -> None:
    tokens: list[str] = []
    # on_success=None: after the resume the step runs again and waits with a new token.
    async with make([token_handler(tokens), noop], [token_flow(None)]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        again = await engine.resume_by_token(tokens[0], {"n": 1})
        assert again.status is ExecutionStatus.WAITING
        assert len(tokens) == 2
        before = await state(engine, execution_id)
        with pytest.raises(errors.InvalidResumeToken):
            await engine.resume_by_token(tokens[0], {"n": 2})
        with pytest.raises(errors.InvalidResumeToken):
            await engine.resume(execution_id, {"n": 2}, token=tokens[0])
        assert await state(engine, execution_id) == before
        # The fresh token works.
        third = await engine.resume_by_token(tokens[1], {"n": 3})
        assert third.execution.context["decision"] == {"n": 3}


async def test_token_of_other_execution(make: MakeEngine) -> None:
    tokens: list[str] = []
    async with make([token_handler(tokens), noop], [token_flow()]) as engine:
        first = (await engine.start("f", {})).execution.id
        second = (await engine.start("f", {})).execution.id
        before = await state(engine, second)
        with pytest.raises(errors.InvalidResumeToken):
            await engine.resume(second, {"x": 1}, token=tokens[0])
        assert await state(engine, second) == before
        # The token was not consumed by the refused call.
        result = await engine.resume(first, {"x": 1}, token=tokens[0])
        assert result.status is ExecutionStatus.COMPLETED


async def test_unknown_token(make: MakeEngine) -> None:
    async with make([token_handler([]), noop], [token_flow()]) as engine:
        with pytest.raises(errors.InvalidResumeToken):
            await engine.resume_by_token("definitely-not-a-token", {})


async def test_expired_token(make: MakeEngine, clock: FakeClock) -> None:
    tokens: list[str] = []
    handler = token_handler(tokens, expires_in=timedelta(hours=1))
    async with make([handler, noop], [token_flow()]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        clock.advance(timedelta(hours=1, seconds=1))
        before = await state(engine, execution_id)
        with pytest.raises(errors.ResumeTokenExpired):
            await engine.resume_by_token(tokens[0], {"late": True})
        with pytest.raises(errors.ResumeTokenExpired):
            await engine.resume(execution_id, {"late": True}, token=tokens[0])
        assert await state(engine, execution_id) == before


async def test_token_not_yet_expired(make: MakeEngine, clock: FakeClock) -> None:
    tokens: list[str] = []
    handler = token_handler(tokens, expires_in=timedelta(hours=1))
    async with make([handler, noop], [token_flow()]) as engine:
        await engine.start("f", {})
        clock.advance(timedelta(minutes=59))
        result = await engine.resume_by_token(tokens[0], {})
        assert result.status is ExecutionStatus.COMPLETED


@pytest.mark.parametrize("how", ["cancel", "fail"])
async def test_token_revoked_on_cancel_and_fail(make: MakeEngine, how: str) -> None:
    tokens: list[str] = []
    async with make([token_handler(tokens), noop], [token_flow()]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        if how == "cancel":
            assert (await engine.cancel(execution_id)).cancelled
        else:
            await engine.fail(execution_id, "stop")
        before = await state(engine, execution_id)
        with pytest.raises(errors.InvalidResumeToken):
            await engine.resume_by_token(tokens[0], {})
        assert await state(engine, execution_id) == before


async def test_token_bound_to_its_step(make: MakeEngine) -> None:
    tokens: list[str] = []
    flow = FlowBuilder("f").step("ask", "ask", on_success="later").step("later", "wait").build()
    async with make([token_handler(tokens), wait_forever], [flow]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        moved = await engine.resume(execution_id, {"no": "token"})
        assert moved.status is ExecutionStatus.WAITING
        assert moved.execution.current_step_id == "later"
        before = await state(engine, execution_id)
        with pytest.raises(errors.InvalidResumeToken):
            await engine.resume_by_token(tokens[0], {})
        assert await state(engine, execution_id) == before


async def test_tokens_are_long_and_unguessable(make: MakeEngine) -> None:
    tokens: list[str] = []
    async with make([token_handler(tokens), noop], [token_flow()]) as engine:
        await engine.start("f", {})
        await engine.start("f", {})
    assert len(tokens) == 2
    assert tokens[0] != tokens[1]
    for token in tokens:
        # >= 128 bits: at least 22 base64 characters (6 bits each) or 32 hex digits.
        assert len(token) >= 22
        assert len(set(token)) > 8


# -- signals ----------------------------------------------------------------------------


def signal_flow(output_key: str | None = "review") -> Any:
    return (
        FlowBuilder("f")
        .step(
            "w",
            "wait",
            output_key=output_key,
            on_success="default",
            ports={"approve": "ship", "reject": "refund"},
        )
        .step("default", "noop", on_success=None)
        .step("ship", "noop", on_success=None)
        .step("refund", "noop", on_success=None)
        .build()
    )


async def test_signal_with_port_stores_payload_and_follows_port(make: MakeEngine) -> None:
    async with make([wait_forever, noop], [signal_flow()]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        result = await engine.signal(execution_id, "w", port="reject", payload={"why": "x"})
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.context["review"] == {"why": "x"}
        assert [r.step_id for r in result.execution.history] == ["w", "refund"]
        types = [e.type for e in await engine.events(execution_id)]
        assert "signal.received" in types


async def test_signal_without_output_key_uses_step_id(make: MakeEngine) -> None:
    async with make([wait_forever, noop], [signal_flow(None)]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        result = await engine.signal(execution_id, "w", port="approve", payload=[1, 2])
        assert result.execution.context == {"w": [1, 2]}
        assert [r.step_id for r in result.execution.history] == ["w", "ship"]


async def test_signal_without_port_continues_on_success(make: MakeEngine) -> None:
    async with make([wait_forever, noop], [signal_flow()]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        result = await engine.signal(execution_id, "w", payload={"ok": 1})
        assert result.status is ExecutionStatus.COMPLETED
        assert [r.step_id for r in result.execution.history] == ["w", "default"]


async def test_signal_wrong_step_changes_nothing(make: MakeEngine) -> None:
    async with make([wait_forever, noop], [signal_flow()]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        before = await state(engine, execution_id)
        with pytest.raises(errors.InvalidSignal):
            await engine.signal(execution_id, "ship", port="approve", payload={"a": 1})
        with pytest.raises(errors.InvalidSignal):
            await engine.signal(execution_id, "w", port="no-such-port", payload={"a": 1})
        assert await state(engine, execution_id) == before


async def test_signal_not_waiting(make: MakeEngine) -> None:
    async with make([wait_forever, noop], [signal_flow()]) as engine:
        created = await engine.create("f", {})
        before = await state(engine, created.execution.id)
        with pytest.raises(errors.InvalidSignal):
            await engine.signal(created.execution.id, "w", payload={})
        assert await state(engine, created.execution.id) == before
        with pytest.raises(errors.ExecutionNotFound):
            await engine.signal("nope", "w")


async def test_signal_payload_over_limit_changes_nothing(make: MakeEngine) -> None:
    options = EngineOptions(context_limits=ContextLimits(max_value_bytes=64))
    async with make([wait_forever, noop], [signal_flow()], options=options) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        before = await state(engine, execution_id)
        with pytest.raises(errors.ContextValueTooLargeError):
            await engine.signal(execution_id, "w", port="approve", payload="y" * 200)
        assert await state(engine, execution_id) == before

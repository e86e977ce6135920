"""Issue 9, item 5: values keep their meaning (memory, SQLite and PostgreSQL).

NaN and Infinity have no JSON form (orjson writes them as ``null``): they are refused
wherever a value enters the store, never silently turned into ``None``. An empty
``tenant_id`` is invalid (it would share the no-tenant idempotency scope).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from flowmonkey import FlowBuilder, Result, errors, handler
from flowmonkey.model.execution import ExecutionStatus
from graph.conftest import MakeEngine
from graph.support import snapshot, stored

BAD = [math.nan, math.inf, -math.inf]


@handler("hold")
async def hold(ctx: Any) -> Result:
    return Result.wait()


@handler("emit")
async def emit(ctx: Any) -> Result:
    return Result.success({"ratio": float(ctx.input["value"])})  # "nan" -> a real NaN


@handler("keep")
async def keep(ctx: Any) -> Result:
    await ctx.checkpoint({"progress": float(ctx.input["value"])})
    return Result.success()


def holding() -> Any:
    return (
        FlowBuilder("hold")
        .step("h", "hold", output_key="got", on_resume=None)
        .step("sig", "waitForSignal")
        .build()
    )


@pytest.mark.parametrize("bad", BAD, ids=["nan", "inf", "-inf"])
async def test_resume_and_signal_payloads_are_refused_and_nothing_changes(
    make: MakeEngine, bad: float
) -> None:
    async with make([hold], [holding()]) as engine:
        execution_id = (await engine.start("hold", {})).execution.id
        before = await snapshot(engine, execution_id)
        for run_next in (True, False):
            with pytest.raises(errors.InvalidValue) as info:
                await engine.resume(execution_id, {"score": [1.0, bad]}, run_next=run_next)
            assert info.value.code == "INVALID_VALUE"
            assert "NaN or Infinity" in info.value.message
            assert "'score[1]'" in info.value.message
            with pytest.raises(errors.InvalidValue):
                await engine.signal(execution_id, "h", payload={"x": bad}, run_next=run_next)
        assert await snapshot(engine, execution_id) == before
        # A finite value still goes through.
        result = await engine.resume(execution_id, {"score": [1.0, 2.5]})
        assert result.execution.context["got"] == {"score": [1.0, 2.5]}


async def test_initial_context_with_nan_is_refused(make: MakeEngine) -> None:
    async with make([hold], [holding()]) as engine:
        with pytest.raises(errors.InvalidValue):
            await engine.create("hold", {"x": {"y": math.nan}})
        with pytest.raises(ValueError):  # InvalidValue is a ValueError too
            await engine.start("hold", {"x": math.inf})
        assert (await engine.list()).items == []


async def test_a_handler_output_with_nan_fails_the_step_instead_of_storing_null(
    make: MakeEngine,
) -> None:
    flow = FlowBuilder("out").step("e", "emit", input={"type": "full"}, output_key="out").build()
    async with make([emit], [flow]) as engine:
        result = await engine.start("out", {"value": "nan"})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None
        assert result.error.code == "INPUT_ERROR"  # like any output JSON cannot hold
        assert "NaN or Infinity" in result.error.message
        ex = await stored(engine, result.execution.id)
        assert "out" not in ex.context
        assert ex.history[-1].error is not None
        assert ex.history[-1].error["retryable"] is False
        ok = await engine.start("out", {"value": "0.5"})
        assert ok.execution.context["out"] == {"ratio": 0.5}


async def test_a_checkpoint_with_infinity_is_refused(make: MakeEngine) -> None:
    flow = FlowBuilder("ck").step("k", "keep", input={"type": "full"}).build()
    async with make([keep], [flow]) as engine:
        result = await engine.start("ck", {"value": "inf"})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and "NaN or Infinity" in result.error.message
        assert (await stored(engine, result.execution.id)).checkpoint is None


async def test_empty_tenant_id_is_invalid(make: MakeEngine) -> None:
    async with make([hold], [holding()]) as engine:
        for bad in ("", 0):
            with pytest.raises(errors.InvalidValue) as info:
                await engine.create("hold", {}, tenant_id=bad, idempotency_key="k")  # type: ignore[arg-type]
            assert "tenant_id" in info.value.message
        with pytest.raises(errors.InvalidValue):
            await engine.start("hold", {}, tenant_id="")
        assert (await engine.list()).items == []
        # None and a real tenant are distinct idempotency scopes.
        none = await engine.create("hold", {}, idempotency_key="k")
        acme = await engine.create("hold", {}, tenant_id="acme", idempotency_key="k")
        assert none.created and acme.created
        assert none.execution.id != acme.execution.id

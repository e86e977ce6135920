"""Pipes: rows written in the step's own commit, validated first, exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import ExecutionStatus, Flow, FlowBuilder, Result, handler
from flowmonkey.definitions.loader import load_flow
from flowmonkey.engine.engine import Engine
from flowmonkey.errors import FlowValidationError
from flowmonkey.model.tables import TableRow

from .conftest import MakeEngine
from .support import capture, noop

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "total": {"type": "number"},
        "tenant": {"type": ["string", "null"]},
    },
    "required": ["order_id", "total"],
    "additionalProperties": False,
}
MAP = "{order_id: output.id, total: output.total, tenant: execution.tenant_id}"


@handler("charge")
async def charge(ctx: Any) -> Result:
    return Result.success({"id": ctx.input["id"], "total": ctx.input["total"]})


def orders_flow(pipe_map: str = MAP, *, when: str = "success", **step: Any) -> Flow:
    return (
        FlowBuilder("orders")
        .step(
            "charge",
            step.pop("type", "charge"),
            input={"type": "key", "key": "order"},
            output_key="charged",
            **step,
        )
        .pipe("orders", pipe_map, when=when)
        .step("done", "noop")
        .build()
    )


async def rows(engine: Engine, table: str = "orders", **query: Any) -> list[TableRow]:
    return (await engine.tables.rows(table, **query)).items


async def test_a_successful_step_writes_one_row_stamped_with_its_tenant(make: MakeEngine) -> None:
    async with make([charge, noop], [orders_flow()]) as engine:
        await engine.tables.create("orders", ORDER_SCHEMA, indexed=["total"])
        result = await engine.start(
            "orders", {"order": {"id": "o-1", "total": 12.5}}, tenant_id="acme"
        )
        assert result.status is ExecutionStatus.COMPLETED
        (row,) = await rows(engine)
        assert row.data == {"order_id": "o-1", "total": 12.5, "tenant": "acme"}
        assert row.tenant_id == "acme"
        assert row.execution_id == result.execution.id and row.step_id == "charge"
        assert await rows(engine, tenant_id="globex") == []


async def test_a_row_that_breaks_the_schema_fails_the_step_and_writes_nothing(
    make: MakeEngine,
) -> None:
    flow = orders_flow("{order_id: output.id, total: 'not a number'}", on_failure=None)
    async with make([charge, noop], [flow]) as engine:
        await engine.tables.create("orders", ORDER_SCHEMA)
        result = await engine.start("orders", {"order": {"id": "o-1", "total": 1}})
        assert result.status is ExecutionStatus.FAILED
        error = result.execution.error
        assert error is not None and error.code == "PIPE_ROW_INVALID"
        assert "total" in error.message
        assert await rows(engine) == []
        # The failed step left no output behind either.
        assert "charged" not in result.execution.context


async def test_a_map_failing_at_run_time_is_a_pipe_error(make: MakeEngine) -> None:
    flow = orders_flow("{order_id: output.id, total: length(output.total)}")
    async with make([charge, noop], [flow]) as engine:
        await engine.tables.create("orders", ORDER_SCHEMA)
        result = await engine.start("orders", {"order": {"id": "o-1", "total": 1}})
        error = result.execution.error
        assert error is not None and error.code == "PIPE_ERROR"
        assert "length" in error.message
        assert await rows(engine) == []


async def test_a_step_that_fails_twice_then_succeeds_writes_one_row(make: MakeEngine) -> None:
    def result(ctx: Any) -> Result:
        if ctx.attempt <= 2:
            return Result.failure("FLAKY", f"attempt {ctx.attempt}")
        return Result.success({"id": "o-9", "total": ctx.attempt})

    flaky, calls = capture("flaky", result=result)
    flow = orders_flow(type="flaky", retry={"maxAttempts": 3})
    async with make([flaky, noop], [flow]) as engine:
        await engine.tables.create("orders", ORDER_SCHEMA)
        done = await engine.start("orders", {"order": {}})
        assert done.status is ExecutionStatus.COMPLETED and len(calls) == 3
        assert [r.data["total"] for r in await rows(engine)] == [3]


async def test_failure_pipes_fire_once_on_the_final_failure_only(make: MakeEngine) -> None:
    def result(ctx: Any) -> Result:
        return Result.failure("DECLINED", f"declined #{ctx.attempt}")

    declined, calls = capture("declined", result=result)
    flow = orders_flow(
        "{order_id: execution.id, total: execution.attempt}",
        when="failure",
        type="declined",
        retry={"maxAttempts": 2},
    )
    async with make([declined, noop], [flow]) as engine:
        await engine.tables.create("orders", ORDER_SCHEMA)
        done = await engine.start("orders", {"order": {}})
        assert done.status is ExecutionStatus.FAILED and len(calls) == 3
        assert [r.data["total"] for r in await rows(engine)] == [3]


async def test_pipes_see_input_error_context_and_execution(make: MakeEngine) -> None:
    schema = {"type": "object"}
    flow = (
        FlowBuilder("f")
        .step("s", "boom", input={"type": "key", "key": "x"})
        .pipe(
            "audit",
            "{input: input, error: error.code, seen: context.x, flow: execution.flow_id}",
            when="always",
        )
        .build()
    )

    @handler("boom")
    async def boom(ctx: Any) -> Result:
        return Result.failure("BOOM", "it broke", retryable=False)

    async with make([boom], [flow]) as engine:
        await engine.tables.create("audit", schema)
        await engine.start("f", {"x": 7})
        (row,) = await rows(engine, "audit")
        assert row.data == {"input": 7, "error": "BOOM", "seen": 7, "flow": "f"}


async def test_pipes_of_one_step_each_see_what_they_read(make: MakeEngine) -> None:
    # The scope is built only as far as the maps read it (the direct maps name their
    # roots; a JMESPath expression may read anything): each pipe must still see it all.
    flow = (
        FlowBuilder("f")
        .step("s", "echo", input={"type": "key", "key": "x"})
        .pipe("audit", "{id: execution.id, step: execution.step_id, at: execution.started_at}")
        .pipe("audit", "{out: output.v, ctx: context.x}")
        .pipe("audit", "{n: length(keys(@)), meta: execution.metadata.m, input: input}")
        .pipe("audit", "{kept: 'yes', none: missing.field}")
        .build()
    )

    @handler("echo")
    async def echo(ctx: Any) -> Result:
        return Result.success({"v": ctx.input})

    async with make([echo], [flow]) as engine:
        await engine.tables.create("audit", {"type": "object"})
        result = await engine.start("f", {"x": 7}, metadata={"m": "meta"})
        started = result.execution.started_at
        assert started is not None
        found = sorted((await rows(engine, "audit", limit=10)), key=lambda r: r.seq)
        assert [r.data for r in found] == [
            {"id": result.execution.id, "step": "s", "at": started.isoformat()},
            {"out": 7, "ctx": 7},
            {"n": 5, "meta": "meta", "input": 7},
            {"kept": "yes", "none": None},
        ]


async def test_a_flow_piping_into_a_missing_table_is_refused(make: MakeEngine) -> None:
    async with make([charge, noop], [orders_flow()]) as engine:
        with pytest.raises(FlowValidationError) as caught:
            await engine.create("orders", {"order": {}})
        assert caught.value.code == "INVALID_FLOW"
        assert [i.path for i in caught.value.issues] == ["steps.charge.pipes[0].table"]
        with pytest.raises(FlowValidationError):
            await engine.save_flow(orders_flow().__class__.from_dict(
                {**orders_flow().to_dict(), "version": "2.0.0"}))  # fmt: skip
        await engine.tables.create("orders", ORDER_SCHEMA)
        created = await engine.create("orders", {"order": {"id": "a", "total": 1}})
        assert created.execution.status is ExecutionStatus.PENDING


def test_flow_files_declare_pipes_and_validation_lists_every_bad_one() -> None:
    text = """
id: f
version: "1.0.0"
initialStepId: s
steps:
  s:
    type: noop
    pipes:
      - {table: orders, map: "{a: output.a}"}
      - {table: orders, map: "{a: ", when: sometimes}
      - {map: "x"}
"""
    with pytest.raises(FlowValidationError) as caught:
        load_flow(text)
    paths = sorted(i.path for i in caught.value.issues if i.severity == "error")
    assert paths == ["steps.s.pipes[1].map", "steps.s.pipes[1].when", "steps.s.pipes[2].table"]
    good = load_flow(text.split('      - {table: orders, map: "{a: "')[0])
    assert good.steps["s"].pipes[0].table == "orders"
    assert Flow.from_dict(good.to_dict()) == good


async def test_a_row_over_the_context_value_limit_is_refused(make: MakeEngine) -> None:
    from flowmonkey import ContextLimits, EngineOptions

    @handler("big")
    async def big(ctx: Any) -> Result:
        return Result.success({"blob": "x" * 500})

    flow = FlowBuilder("f").step("s", "big").pipe("audit", "{blob: output.blob}").build()
    options = EngineOptions(context_limits=ContextLimits(max_value_bytes=200))
    async with make([big], [flow], options=options) as engine:
        await engine.tables.create("audit", {"type": "object"})
        result = await engine.start("f", {})
        error = result.execution.error
        assert error is not None and error.code == "PIPE_ROW_INVALID"
        assert "limit is 200" in error.message
        assert await rows(engine, "audit") == []


async def test_a_row_that_is_not_json_is_refused(make: MakeEngine) -> None:
    @handler("odd")
    async def odd(ctx: Any) -> Result:
        return Result.success({"v": object()})

    flow = FlowBuilder("f").step("s", "odd").pipe("audit", "{v: output.v}").build()
    async with make([odd], [flow]) as engine:
        await engine.tables.create("audit", {"type": "object"})
        result = await engine.start("f", {})
        error = result.execution.error
        assert error is not None and error.code == "PIPE_ROW_INVALID"
        assert "not JSON-serialisable" in error.message
        assert await rows(engine, "audit") == []

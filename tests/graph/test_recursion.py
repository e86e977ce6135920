"""Issue 9, item 7: bounded sub-flow recursion (memory, SQLite and PostgreSQL)."""

from __future__ import annotations

from flowmonkey import EngineOptions, Flow, FlowBuilder
from flowmonkey.definitions import validate_flow
from flowmonkey.model.execution import ExecutionStatus
from graph.conftest import MakeEngine
from graph.support import noop


def recursive(kind: str = "subflow") -> Flow:
    config = {"flowId": "fractal"} if kind == "subflow" else {"items": "items", "flow": "fractal"}
    return (
        FlowBuilder("fractal")
        .step("work", "noop")
        .step("again", kind, config=config, input={"type": "full"}, output_key="child")
        .build()
    )


async def test_a_flow_that_starts_itself_stops_at_max_subflow_depth(make: MakeEngine) -> None:
    options = EngineOptions(max_subflow_depth=3)
    async with make([noop], [recursive()], options=options) as engine:
        root = await engine.create("fractal", {})
        await engine.run_until_idle()
        everything = (await engine.list(flow_id="fractal", limit=100)).items
        # The root and three levels of children: the deepest one may not start another.
        assert sorted(e.depth for e in everything) == [0, 1, 2, 3]
        deepest = next(e for e in everything if e.depth == 3)
        assert deepest.status is ExecutionStatus.FAILED
        assert deepest.error is not None
        assert deepest.error.code == "SUBFLOW_DEPTH_EXCEEDED"
        assert deepest.error.step_id == "again"
        assert deepest.error.details == {"depth": 3, "max_subflow_depth": 3}
        # The failure travels up as CHILD_FAILED; nothing is left running.
        final = await engine.get(root.execution.id)
        assert final is not None and final.status is ExecutionStatus.FAILED
        assert final.error is not None and final.error.code == "CHILD_FAILED"
        assert all(e.status.is_terminal for e in everything)


async def test_for_each_is_bounded_too(make: MakeEngine) -> None:
    options = EngineOptions(max_subflow_depth=2)
    async with make([noop], [recursive("forEach")], options=options) as engine:
        root = await engine.create("fractal", {"items": [1]})
        await engine.run_until_idle()
        everything = (await engine.list(flow_id="fractal", limit=100)).items
        assert sorted(e.depth for e in everything) == [0, 1, 2]
        final = await engine.get(root.execution.id)
        assert final is not None and final.status is ExecutionStatus.FAILED


async def test_the_default_depth_is_32(make: MakeEngine) -> None:
    assert EngineOptions().max_subflow_depth == 32
    flow = (
        FlowBuilder("leaf").step("a", "noop").build(),
        FlowBuilder("parent").step("call", "subflow", config={"flowId": "leaf"}).build(),
    )
    async with make([noop], flow) as engine:
        result = await engine.start("parent", {})
        await engine.run_until_idle()
        (child,) = (await engine.list(flow_id="leaf")).items
        assert (child.depth, child.parent_execution_id) == (1, result.execution.id)
        assert child.status is ExecutionStatus.COMPLETED


def test_direct_self_recursion_is_a_validation_warning() -> None:
    for kind, field in (("subflow", "flowId"), ("forEach", "flow")):
        issues = validate_flow(recursive(kind))
        (warning,) = [i for i in issues if "recursion" in i.message]
        assert warning.severity == "warning"
        assert warning.path == f"steps.again.config.{field}"
        assert "max_subflow_depth" in warning.message
    other = FlowBuilder("p").step("call", "subflow", config={"flowId": "other"}).build()
    assert not [i for i in validate_flow(other) if "recursion" in i.message]

"""Sub-flows and forEach: durable children, lease-free parent waits, failures, fire and
forget, cancellation, concurrency limits, ordering and a 100-child fan-out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flowmonkey import EngineOptions, ExecutionStatus, FlowBuilder, Result, handler
from flowmonkey.engine.engine import Engine
from flowmonkey.model.events import Event
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import boom, events, noop, recorder, stored

TERMINAL = ("execution.completed", "execution.failed", "execution.cancelled")


@handler("times10")
async def times10(ctx: Any) -> Result:
    return Result.success(ctx.input["item"] * 10)


def child_flow(flow_id: str = "child", *, waits: bool = False, fails: bool = False) -> Any:
    b = FlowBuilder(flow_id)
    if waits:
        b.wait_for_signal("hold", output_key="held")
    if fails:
        b.step("work", "boom", on_success=None)
    else:
        b.step("work", "times10", input={"type": "full"}, output_key="out", on_success=None)
    return b.build()


def track_live_children(engine: Engine) -> dict[str, Any]:
    """Follow children through events: how many are non-terminal at once, at most."""
    state: dict[str, Any] = {"live": set(), "max": 0, "created": 0}

    def on_event(event: Event) -> None:
        if event.type == "execution.created" and event.data.get("parent_execution_id"):
            state["live"].add(event.execution_id)
            state["created"] += 1
            state["max"] = max(state["max"], len(state["live"]))
        elif event.type in TERMINAL:
            state["live"].discard(event.execution_id)

    engine.on("*", on_event)
    return state


# -- subflow -----------------------------------------------------------------------------


def parent_flow(**subflow: Any) -> Any:
    return (
        FlowBuilder("parent")
        .step("prep", "noop")
        .subflow("sub", "child", input={"type": "keys", "keys": ["item"]}, output_key="res",
                 **subflow)
        .step("after", "noop", on_success=None)
        .step("recover", "noop", on_success=None)
        .build()
    )  # fmt: skip


async def test_subflow_child_is_durable_and_parent_waits_without_a_lease(
    make: MakeEngine, clock: FakeClock
) -> None:
    flows = [parent_flow(output="out"), child_flow(waits=True)]
    async with make([noop, times10], flows) as engine:
        parent = await engine.start("parent", {"item": 4})
        assert parent.status is ExecutionStatus.WAITING
        await engine.run_until_idle()
        (child,) = (await engine.list(parent_execution_id=parent.execution.id)).items
        assert child.parent_execution_id == parent.execution.id
        assert child.flow_id == "child"
        assert child.status is ExecutionStatus.WAITING
        assert child.context["item"] == 4
        waiting = await stored(engine, parent.execution.id)
        assert waiting.status is ExecutionStatus.WAITING
        # nobody holds the parent's lease while the child waits
        other = await engine.store.acquire(
            parent.execution.id, owner="someone-else", now=clock.now(),
            lease_for=timedelta(seconds=30), start=False,
        )  # fmt: skip
        assert other.lease is not None
        await engine.store.release(other.lease)
        started = await events(engine, parent.execution.id, "subflow.started")
        assert [e.data["child_execution_id"] for e in started] == [child.id]

        done = await engine.signal(child.id, "hold", payload={"ok": True})
        assert done.status is ExecutionStatus.COMPLETED
        await engine.run_until_idle()
        final = await stored(engine, parent.execution.id)
        assert final.status is ExecutionStatus.COMPLETED, final.error
        assert final.context["res"] == 40
        assert [h.step_id for h in final.history][-1] == "after"


async def test_subflow_child_failure_is_child_failed_routed_by_on_failure(
    make: MakeEngine,
) -> None:
    flow = (
        FlowBuilder("parent")
        .subflow("sub", "child", on_failure="recover", on_success=None)
        .step("recover", "recover", on_success=None)
        .build()
    )
    recover, seen = recorder("recover")
    async with make([boom, recover], [flow, child_flow(fails=True)]) as engine:
        parent = await engine.start("parent", {})
        await engine.run_until_idle()
        final = await stored(engine, parent.execution.id)
        assert final.status is ExecutionStatus.COMPLETED, final.error
        assert len(seen) == 1
        assert final.last_error is not None
        assert (final.last_error.code, final.last_error.step_id) == ("CHILD_FAILED", "sub")
        (child,) = (await engine.list(parent_execution_id=parent.execution.id)).items
        assert child.status is ExecutionStatus.FAILED
        assert final.last_error.details["child_execution_id"] == child.id


async def test_subflow_child_failure_without_route_fails_parent(make: MakeEngine) -> None:
    flow = FlowBuilder("parent").subflow("sub", "child", on_success=None).build()
    async with make([boom], [flow, child_flow(fails=True)]) as engine:
        parent = await engine.start("parent", {})
        await engine.run_until_idle()
        final = await stored(engine, parent.execution.id)
        assert final.status is ExecutionStatus.FAILED
        assert final.error is not None and final.error.code == "CHILD_FAILED"


async def test_subflow_fire_and_forget(make: MakeEngine) -> None:
    async with make([noop, times10], [parent_flow(wait=False), child_flow()]) as engine:
        parent = await engine.start("parent", {"item": 2})
        assert parent.status is ExecutionStatus.COMPLETED, parent.error
        (child,) = (await engine.list(parent_execution_id=parent.execution.id)).items
        assert parent.context["res"] == {"executionId": child.id, "flowId": "child"}
        assert not child.status.is_terminal  # run(parent) did not drive the child
        await engine.run_until_idle()
        done = await stored(engine, child.id)
        assert done.status is ExecutionStatus.COMPLETED
        assert done.context["out"] == 20


async def test_cancelling_the_parent_cancels_its_children(make: MakeEngine) -> None:
    async with make([noop, times10], [parent_flow(), child_flow(waits=True)]) as engine:
        parent = await engine.start("parent", {"item": 1})
        await engine.run_until_idle()
        (child,) = (await engine.list(parent_execution_id=parent.execution.id)).items
        assert child.status is ExecutionStatus.WAITING
        result = await engine.cancel(parent.execution.id, reason="stop")
        assert result.cancelled and result.children_cancelled == 1
        gone = await stored(engine, child.id)
        assert gone.status is ExecutionStatus.CANCELLED
        assert gone.cancellation is not None and gone.cancellation.source == "parent"


# -- forEach -----------------------------------------------------------------------------


def each_flow(concurrency: int | None = None, **extra: Any) -> Any:
    return (
        FlowBuilder("each")
        .for_each("loop", "items", "child", concurrency=concurrency, output="out",
                  output_key="results", **extra)
        .step("after", "noop", on_success=None)
        .build()
    )  # fmt: skip


async def test_for_each_respects_concurrency_and_keeps_order(make: MakeEngine) -> None:
    async with make([noop, times10], [each_flow(concurrency=3), child_flow()]) as engine:
        live = track_live_children(engine)
        parent = await engine.start("each", {"items": list(range(8))})
        assert parent.status is ExecutionStatus.WAITING
        await engine.run_until_idle()
        final = await stored(engine, parent.execution.id)
        assert final.status is ExecutionStatus.COMPLETED, final.error
        assert final.context["results"] == [i * 10 for i in range(8)]
        assert live["created"] == 8
        assert live["max"] == 3  # the limit was reached and never exceeded


async def test_for_each_collects_outputs_in_item_order_not_finish_order(
    make: MakeEngine, clock: FakeClock
) -> None:
    """Children finish in reverse order (each waits until its own time)."""
    child = (
        FlowBuilder("child")
        .delay("nap", until="${item.at}")
        .step("work", "noop", on_success=None)
        .build()
    )
    base = clock.now()
    items = [{"at": (base + timedelta(minutes=10 - i)).isoformat()} for i in range(4)]
    flow = (
        FlowBuilder("each")
        .for_each("loop", "items", "child", concurrency=4, output="index",
                  output_key="results", input={"type": "static", "value": {}})
        .build()
    )  # fmt: skip
    async with make([noop, times10], [flow, child]) as engine:
        parent = await engine.start("each", {"items": items})
        await engine.run_until_idle()
        order: list[int] = []
        for minute in range(6, 11):
            clock.set(base + timedelta(minutes=minute))
            await engine.run_until_idle()
            for c in (await engine.list(parent_execution_id=parent.execution.id)).items:
                if c.status is ExecutionStatus.COMPLETED and c.context["index"] not in order:
                    order.append(c.context["index"])
        assert order == [3, 2, 1, 0]
        final = await stored(engine, parent.execution.id)
        assert final.status is ExecutionStatus.COMPLETED, final.error
        assert final.context["results"] == [0, 1, 2, 3]


async def test_for_each_child_input_merges_item_index_over_step_input(make: MakeEngine) -> None:
    seen_ctx: list[dict[str, Any]] = []

    @handler("look")
    async def look(ctx: Any) -> Result:
        seen_ctx.append(dict(ctx.context))
        return Result.success()

    child = FlowBuilder("child").step("look", "look", on_success=None).build()
    flow = (
        FlowBuilder("each")
        .for_each("loop", "items", "child", input={"type": "keys", "keys": ["shared"]})
        .build()
    )
    async with make([look], [flow, child]) as engine:
        parent = await engine.start("each", {"items": ["a", "b"], "shared": 1})
        await engine.run_until_idle()
        assert (await stored(engine, parent.execution.id)).status is ExecutionStatus.COMPLETED
        assert sorted(seen_ctx, key=lambda c: c["index"]) == [
            {"shared": 1, "item": "a", "index": 0},
            {"shared": 1, "item": "b", "index": 1},
        ]


async def test_for_each_empty_list_is_empty_output_at_once(make: MakeEngine) -> None:
    async with make([noop, times10], [each_flow(), child_flow()]) as engine:
        parent = await engine.start("each", {"items": []})
        assert parent.status is ExecutionStatus.COMPLETED, parent.error
        assert parent.context["results"] == []
        assert (await engine.list(parent_execution_id=parent.execution.id)).items == []


async def test_for_each_failing_child_fails_step_with_child_failed(make: MakeEngine) -> None:
    @handler("picky")
    async def picky(ctx: Any) -> Result:
        if ctx.context["item"] == "bad":
            return Result.failure("BAD_ITEM", "bad item", retryable=False)
        return Result.success()

    child = FlowBuilder("child").step("work", "picky", on_success=None).build()
    recover, seen = recorder("recover")
    flow = (
        FlowBuilder("each")
        .for_each("loop", "items", "child", concurrency=1, on_failure="recover",
                  on_success=None)
        .step("recover", "recover", on_success=None)
        .build()
    )  # fmt: skip
    async with make([picky, recover], [flow, child]) as engine:
        parent = await engine.start("each", {"items": ["ok", "bad", "ok", "ok"]})
        await engine.run_until_idle()
        final = await stored(engine, parent.execution.id)
        assert final.status is ExecutionStatus.COMPLETED, final.error
        assert len(seen) == 1
        assert final.last_error is not None and final.last_error.code == "CHILD_FAILED"
        children = (await engine.list(parent_execution_id=parent.execution.id)).items
        # concurrency 1: the items after the failed one were never started
        assert sorted(c.context["index"] for c in children) == [0, 1]


async def test_fan_out_of_100_children_wakes_the_parent_once(make: MakeEngine) -> None:
    options = EngineOptions(max_steps=1000)
    async with make([noop, times10], [each_flow(concurrency=100), child_flow()],
                    options=options) as engine:  # fmt: skip
        parent = await engine.start("each", {"items": list(range(100))})
        assert parent.status is ExecutionStatus.WAITING
        await engine.run_until_idle()
        final = await stored(engine, parent.execution.id)
        assert final.status is ExecutionStatus.COMPLETED, final.error
        assert final.context["results"] == [i * 10 for i in range(100)]
        resumed = [
            e for e in await events(engine, parent.execution.id, "execution.resumed")
            if e.data.get("reason") == "children"
        ]  # fmt: skip
        assert len(resumed) == 1
        loop_runs = [h for h in final.history if h.step_id == "loop"]
        assert len(loop_runs) == 2  # start the children, then collect them

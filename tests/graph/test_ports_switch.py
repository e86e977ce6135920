"""Ports (named outputs) and the ``switch`` exclusive gateway, including loops."""

from __future__ import annotations

from typing import Any

from flowmonkey import ExecutionStatus, FlowBuilder, Result, load_flow

from .conftest import MakeEngine
from .support import events, noop, recorder, stored

# -- ports -------------------------------------------------------------------------------


def _port_flow() -> Any:
    return (
        FlowBuilder("ports")
        .step("decide", "decide", ports={"left": "left", "right": "right"})
        .step("left", "mark", config={"side": "left"}, on_success=None)
        .step("right", "mark", config={"side": "right"}, on_success=None)
        .build()
    )


def _decider(port: str | None) -> Any:
    h, _ = recorder("decide", lambda ctx: Result.success({"chose": port}, port=port))
    return h


async def _mark(ctx: Any) -> Result:
    ctx.set("side", ctx.config["side"])
    return Result.success()


async def test_success_port_follows_transitions_ports(make: MakeEngine) -> None:
    mark, seen = recorder("mark", lambda ctx: Result.success({"side": ctx.config["side"]}))
    for port in ("left", "right"):
        seen.clear()
        async with make([_decider(port), mark], [_port_flow()]) as engine:
            result = await engine.start("ports", {})
            assert result.status is ExecutionStatus.COMPLETED, result.error
            assert [c.step.id for c in seen] == [port]
            transitions = await events(engine, result.execution.id, "transition")
            assert [(e.data["from_step_id"], e.data["to_step_id"]) for e in transitions] == [
                ("decide", port)
            ]


async def test_unknown_port_fails_with_invalid_transition(make: MakeEngine) -> None:
    mark, seen = recorder("mark")
    async with make([_decider("sideways"), mark], [_port_flow()]) as engine:
        result = await engine.start("ports", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None
        assert result.error.code == "INVALID_TRANSITION"
        assert result.error.step_id == "decide"
        assert "sideways" in result.error.message
        assert seen == []


async def test_port_to_null_completes(make: MakeEngine) -> None:
    flow = load_flow(
        {
            "id": "p", "version": "1.0.0", "initialStepId": "a",
            "steps": {
                "a": {"id": "a", "type": "decide",
                      "transitions": {"onSuccess": "b", "ports": {"stop": None}}},
                "b": {"id": "b", "type": "noop"},
            },
        }
    )  # fmt: skip
    async with make([_decider("stop"), noop], [flow]) as engine:
        result = await engine.start("p", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert [h.step_id for h in (await stored(engine, result.execution.id)).history] == ["a"]


# -- switch ------------------------------------------------------------------------------


def _switch_flow(default: Any = "low", **extra: Any) -> Any:
    b = FlowBuilder("sw").switch(
        "route",
        cases=[("amount > `100`", "high"), ("amount > `10`", "mid"), ("vip", "vip")],
        default=default,
        **extra,
    )
    for name in ("high", "mid", "vip", "low"):
        b.step(name, "mark", config={"side": name}, on_success=None)
    return b.build()


async def test_switch_first_matching_case_wins_in_declared_order(make: MakeEngine) -> None:
    mark, seen = recorder("mark")
    async with make([mark], [_switch_flow()]) as engine:
        cases = [
            ({"amount": 500, "vip": True}, "high"),  # cases 0, 1 and 2 match: 0 wins
            ({"amount": 50, "vip": True}, "mid"),  # cases 1 and 2 match: 1 wins
            ({"amount": 5, "vip": True}, "vip"),
            ({"amount": 5, "vip": False}, "low"),  # default
            ({}, "low"),  # missing keys are null in JMESPath: no case matches
        ]
        for context, expected in cases:
            seen.clear()
            result = await engine.start("sw", context)
            assert result.status is ExecutionStatus.COMPLETED, (context, result.error)
            assert [c.step.id for c in seen] == [expected], context


async def test_switch_no_match_without_default_fails_no_match(make: MakeEngine) -> None:
    mark, seen = recorder("mark")
    async with make([mark], [_switch_flow(default=None)]) as engine:
        result = await engine.start("sw", {"amount": 1})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None
        assert (result.error.code, result.error.step_id) == ("NO_MATCH", "route")
        assert seen == []


async def test_switch_no_match_is_routed_by_on_failure(make: MakeEngine) -> None:
    flow = load_flow(
        {
            "id": "sw2", "version": "1.0.0", "initialStepId": "route",
            "steps": {
                "route": {"id": "route", "type": "switch",
                          "config": {"cases": [{"when": "ok", "goto": "fine"}]},
                          "transitions": {"onFailure": "recover"}},
                "fine": {"id": "fine", "type": "noop"},
                "recover": {"id": "recover", "type": "recover"},
            },
        }
    )  # fmt: skip
    recover, seen = recorder("recover", lambda ctx: Result.success({"saw": "x"}))
    async with make([noop, recover], [flow]) as engine:
        result = await engine.start("sw2", {"ok": False})
        assert result.status is ExecutionStatus.COMPLETED, result.error
        assert len(seen) == 1
        last = result.execution.last_error
        assert last is not None and (last.code, last.step_id) == ("NO_MATCH", "route")
        ok = await engine.start("sw2", {"ok": True})
        assert ok.status is ExecutionStatus.COMPLETED
        assert len(seen) == 1  # the matching case did not go to recover


async def test_switch_default_null_completes_the_flow(make: MakeEngine) -> None:
    flow = load_flow(
        {
            "id": "sw3", "version": "1.0.0", "initialStepId": "route",
            "steps": {
                "route": {"id": "route", "type": "switch",
                          "config": {"cases": [{"when": "go", "goto": "work"}], "default": None}},
                "work": {"id": "work", "type": "mark", "config": {"side": "work"}},
            },
        }
    )  # fmt: skip
    mark, seen = recorder("mark")
    async with make([mark], [flow]) as engine:
        result = await engine.start("sw3", {"go": False})
        assert result.status is ExecutionStatus.COMPLETED, result.error
        assert seen == []
        result = await engine.start("sw3", {"go": True})
        assert result.status is ExecutionStatus.COMPLETED
        assert len(seen) == 1


async def test_switch_case_goto_null_completes(make: MakeEngine) -> None:
    flow = load_flow(
        {
            "id": "sw4", "version": "1.0.0", "initialStepId": "route",
            "steps": {
                "route": {"id": "route", "type": "switch",
                          "config": {"cases": [{"when": "stop", "goto": None}],
                                     "default": "work"}},
                "work": {"id": "work", "type": "mark", "config": {"side": "work"}},
            },
        }
    )  # fmt: skip
    mark, seen = recorder("mark")
    async with make([mark], [flow]) as engine:
        assert (await engine.start("sw4", {"stop": True})).status is ExecutionStatus.COMPLETED
        assert seen == []


async def test_back_edge_counter_loop_terminates(make: MakeEngine) -> None:
    async def inc(ctx: Any) -> Result:
        return Result.success((ctx.input or 0) + 1)

    from flowmonkey import handler

    flow = (
        FlowBuilder("loop")
        .step("inc", "inc", input={"type": "key", "key": "n"}, output_key="n")
        .switch("check", cases=[("n < `5`", "inc")], default="done")
        .step("done", "noop", on_success=None)
        .build()
    )
    async with make([handler("inc")(inc), noop], [flow]) as engine:
        result = await engine.start("loop", {"n": 0})
        assert result.status is ExecutionStatus.COMPLETED, result.error
        assert result.context["n"] == 5
        steps = [h.step_id for h in (await stored(engine, result.execution.id)).history]
        assert steps == ["inc", "check"] * 5 + ["done"]


async def test_back_edge_loop_without_exit_stops_at_max_steps(make: MakeEngine) -> None:
    from flowmonkey import EngineOptions

    flow = (
        FlowBuilder("spin").step("work", "noop").switch("again", cases=[("`true`", "work")]).build()
    )
    async with make([noop], [flow], options=EngineOptions(max_steps=20)) as engine:
        result = await engine.start("spin", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "MAX_STEPS"

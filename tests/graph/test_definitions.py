"""Builder == file form, Vyuh graphs that load and run, flows stored in the store, and
validation of graph problems."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import (
    EngineOptions,
    ExecutionStatus,
    FlowBuilder,
    FlowRegistry,
    FlowValidationError,
    Result,
    handler,
    load_flow,
)
from flowmonkey.definitions import to_mermaid, validate_flow
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine, OpenStore
from .support import noop, recorder, stored

GRAPH_YAML = """
id: graph
version: 2.0.0
initialStepId: fork
steps:
  fork:
    id: fork
    type: parallel
    config: {branches: [review, wait]}
  review:
    id: review
    type: userTask
    config: {title: "Review {{doc.id}}", role: editor, priority: high, dueIn: 1d,
             form: {type: object}}
    outputKey: review
    transitions: {onSuccess: join, onTimeout: join}
  wait:
    id: wait
    type: waitForSignal
    config: {signal: go, timeout: 2h}
    transitions: {onSuccess: join}
  join:
    id: join
    type: join
    config: {mode: any}
    transitions: {onSuccess: nap}
  nap:
    id: nap
    type: delay
    config: {duration: 1h30m}
    transitions: {onSuccess: route}
  route:
    id: route
    type: switch
    config:
      cases:
        - {when: "review.ok", goto: child}
        - {when: "length(items) > `0`", goto: each}
      default: null
  child:
    id: child
    type: subflow
    config: {flowId: sub, wait: false}
    input: {type: keys, keys: [doc]}
    transitions: {onSuccess: null}
  each:
    id: each
    type: forEach
    config: {items: items, flow: sub, concurrency: 5, output: out}
    outputKey: results
"""


def test_builder_matches_the_file_form() -> None:
    built = (
        FlowBuilder("graph", version="2.0.0")
        .parallel("fork", ["review", "wait"])
        .user_task("review", "Review {{doc.id}}", role="editor", priority="high",
                   due_in=timedelta(days=1), form={"type": "object"}, output_key="review",
                   on_success="join", on_timeout="join")
        .wait_for_signal("wait", "go", timeout="2h", on_success="join")
        .join("join", mode="any")
        .delay("nap", "1h30m")
        .switch("route", cases=[("review.ok", "child"), ("length(items) > `0`", "each")])
        .subflow("child", "sub", wait=False, input={"type": "keys", "keys": ["doc"]},
                 on_success=None)
        .for_each("each", "items", "sub", concurrency=5, output="out", output_key="results")
        .build()
    )  # fmt: skip
    from_file = load_flow(GRAPH_YAML)
    # switch default: the file says null (complete); the builder's default=None means
    # "no default" (NO_MATCH). Compare the rest and check that one difference explicitly.
    assert from_file.steps["route"].config["default"] is None
    file_dict = from_file.to_dict()
    del file_dict["steps"]["route"]["config"]["default"]
    assert built.to_dict() == file_dict
    assert to_mermaid(built).count("-->") == to_mermaid(from_file).count("-->") - 1


def test_builder_and_file_are_equal_flows() -> None:
    text = """
id: g2
version: 1.0.0
initialStepId: fork
steps:
  fork: {id: fork, type: parallel, config: {branches: [a, b]}}
  a: {id: a, type: work, transitions: {onSuccess: join}}
  b: {id: b, type: work, transitions: {onSuccess: join}}
  join: {id: join, type: join, config: {mode: all}, transitions: {onSuccess: route}}
  route:
    id: route
    type: switch
    config: {cases: [{when: "x == `1`", goto: a2}], default: a3}
  a2: {id: a2, type: work}
  a3: {id: a3, type: work}
"""
    built = (
        FlowBuilder("g2")
        .parallel("fork", ["a", "b"])
        .step("a", "work", on_success="join")
        .step("b", "work", on_success="join")
        .join("join")
        .switch("route", cases=[("x == `1`", "a2")], default="a3")
        .step("a2", "work", on_success=None)
        .step("a3", "work", on_success=None)
        .build()
    )
    assert built == load_flow(text)


# -- Vyuh graphs ---------------------------------------------------------------------------

CHILD_GRAPH = {
    "code": "checker", "version": 1,
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "check", "type": "serviceTask", "config": {"schemaType": "check",
                                                           "storeAs": "checked"}},
        {"id": "end", "type": "end"},
    ],
    "edges": [
        {"id": "c1", "sourceNodeId": "start", "targetNodeId": "check"},
        {"id": "c2", "sourceNodeId": "check", "targetNodeId": "end"},
    ],
}  # fmt: skip

APPROVAL_GRAPH = {
    "code": "approval", "name": "Approval", "version": 1,
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "validate", "type": "serviceTask",
         "config": {"schemaType": "validate", "storeAs": "validation"}},
        {"id": "split", "type": "allOf"},
        {"id": "review", "type": "userTask",
         "config": {"title": "Review {{doc.title}}", "assignToRole": "approvers",
                    "storeAs": "review", "priority": "normal"}},
        {"id": "scan", "type": "serviceTask", "config": {"schemaType": "scan",
                                                          "storeAs": "scan"}},
        {"id": "merge", "type": "allOf"},
        {"id": "cool", "type": "timerEvent",
         "config": {"timerType": "duration", "duration": "1h", "storeAs": "timer"}},
        {"id": "child", "type": "subflow",
         "config": {"workflowCode": "checker", "executionMode": "synchronous",
                    "storeAs": "childResult"}},
        {"id": "decide", "type": "oneOf"},
        {"id": "confirm", "type": "signalWait", "config": {"signal": "confirm",
                                                            "storeAs": "confirmation"}},
        {"id": "reject", "type": "serviceTask", "config": {"schemaType": "reject"}},
        {"id": "done", "type": "end"},
        {"id": "rejected", "type": "end"},
    ],
    "edges": [
        {"id": "e1", "sourceNodeId": "start", "targetNodeId": "validate"},
        {"id": "e2", "sourceNodeId": "validate", "targetNodeId": "split"},
        {"id": "e3", "sourceNodeId": "split", "targetNodeId": "review"},
        {"id": "e4", "sourceNodeId": "split", "targetNodeId": "scan"},
        {"id": "e5", "sourceNodeId": "review", "targetNodeId": "merge"},
        {"id": "e6", "sourceNodeId": "scan", "targetNodeId": "merge"},
        {"id": "e7", "sourceNodeId": "merge", "targetNodeId": "cool"},
        {"id": "e8", "sourceNodeId": "cool", "targetNodeId": "child"},
        {"id": "e9", "sourceNodeId": "child", "targetNodeId": "decide"},
        {"id": "e10", "sourceNodeId": "decide", "targetNodeId": "confirm",
         "condition": {"schemaType": "condition.expression",
                       "expression": "review.decision == 'approved' && scan.clean"}},
        {"id": "e11", "sourceNodeId": "decide", "targetNodeId": "reject",
         "condition": {"schemaType": "condition.always"}},
        {"id": "e12", "sourceNodeId": "confirm", "targetNodeId": "done"},
        {"id": "e13", "sourceNodeId": "reject", "targetNodeId": "rejected"},
    ],
}  # fmt: skip


@pytest.mark.parametrize(("decision", "ends_at"), [("approved", "confirm"),
                                                   ("declined", "reject")])  # fmt: skip
async def test_vyuh_graph_loads_and_runs_end_to_end(
    make: MakeEngine, clock: FakeClock, decision: str, ends_at: str
) -> None:
    flow = load_flow(APPROVAL_GRAPH)
    child = load_flow(CHILD_GRAPH)
    assert (flow.id, flow.version, flow.initial_step_id) == ("approval", "1.0.0", "validate")
    assert flow.steps["split"].type == "parallel" and flow.steps["merge"].type == "join"
    assert flow.steps["decide"].type == "switch"
    validate, _ = recorder("validate", lambda ctx: Result.success({"ok": True}))
    scan, _ = recorder("scan", lambda ctx: Result.success({"clean": True}))
    check, _ = recorder("check", lambda ctx: Result.success("fine"))
    reject, rejected = recorder("reject")
    async with make([validate, scan, check, reject], [flow, child]) as engine:
        first = await engine.start("approval", {"doc": {"title": "Plan"}})
        assert first.status is ExecutionStatus.WAITING
        (task,) = await engine.tasks(role="approvers")
        assert task.title == "Review Plan"
        after_task = await engine.complete_task(task.id, output={"decision": decision},
                                                user_id="vera")  # fmt: skip
        assert after_task.status is ExecutionStatus.WAITING  # the 1h timer
        clock.advance(timedelta(hours=1))
        await engine.run_until_idle()
        ex = await stored(engine, first.execution.id)
        assert ex.context["childResult"]["checked"] == "fine"
        if ends_at == "confirm":
            assert ex.status is ExecutionStatus.WAITING
            done = await engine.signal(ex.id, "confirm", payload={"by": "vera"})
            assert done.status is ExecutionStatus.COMPLETED, done.error
            assert done.context["confirmation"] == {"by": "vera"}
            assert rejected == []
        else:
            assert ex.status is ExecutionStatus.COMPLETED, ex.error
            assert len(rejected) == 1
        final = await stored(engine, first.execution.id)
        assert final.context["review"] == {"decision": decision}
        assert final.context["scan"] == {"clean": True}
        assert "timer" in final.context


# -- flows in the store ----------------------------------------------------------------------


def versioned(version: str, marker: str) -> Any:
    return (
        FlowBuilder("stored", version=version)
        .step("s", "mark", config={"v": marker}, on_success=None)
        .build()
    )


async def test_flows_saved_in_the_store_latest_by_semver_and_loaded_by_a_new_engine(
    make: MakeEngine, open_store: OpenStore
) -> None:
    mark, seen = recorder("mark", lambda ctx: Result.success(ctx.config["v"]))
    async with make([mark]) as engine:
        for version in ("1.9.0", "1.10.0", "1.2.0"):
            assert await engine.save_flow(versioned(version, version)) is True
        with pytest.raises(FlowValidationError):  # versions are immutable
            await engine.save_flow(versioned("1.9.0", "changed"))
        latest = await engine.store.get_flow("stored")
        assert latest is not None and latest.version == "1.10.0"
        assert await engine.store.flow_versions("stored") == ["1.10.0", "1.9.0", "1.2.0"]
        old = await engine.store.get_flow("stored", "1.9.0")
        assert old is not None and old.definition["steps"]["s"]["config"] == {"v": "1.9.0"}

    options = EngineOptions(load_flows_from_store=True)
    async with make([mark], store=open_store(), options=options) as second:
        assert second.flows.versions("stored") == ["1.10.0", "1.9.0", "1.2.0"]
        result = await second.start("stored", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.flow_version == "1.10.0"
        pinned = await second.start("stored", {}, version="1.2.0")
        assert pinned.execution.flow_version == "1.2.0"
        assert [c.config["v"] for c in seen] == ["1.10.0", "1.2.0"]


# -- validation ----------------------------------------------------------------------------


def _flow(steps: dict[str, Any], initial: str = "a") -> dict[str, Any]:
    for key, step in steps.items():
        step.setdefault("id", key)
    return {"id": "v", "version": "1.0.0", "initialStepId": initial, "steps": steps}


def _error_paths(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(FlowValidationError) as info:
        load_flow(data)
    assert info.value.code == "INVALID_FLOW"
    return {i.path: i.message for i in info.value.issues if i.severity == "error"}


def test_unreachable_step_is_a_warning_only() -> None:
    data = _flow({"a": {"type": "work"}, "orphan": {"type": "work"}})
    flow = load_flow(data)  # does not raise
    issues = validate_flow(flow)
    assert [(i.path, i.severity) for i in issues] == [("steps.orphan", "warning")]
    assert "unreachable" in issues[0].message


def test_join_without_a_matching_fork_is_an_error() -> None:
    errors = _error_paths(_flow({
        "a": {"type": "work", "transitions": {"onSuccess": "j"}},
        "j": {"type": "join"},
    }))  # fmt: skip
    assert "steps.j" in errors and "not reached by the branches" in errors["steps.j"]


def test_branches_reaching_different_joins_is_an_error() -> None:
    errors = _error_paths(_flow({
        "a": {"type": "parallel", "config": {"branches": ["b", "c"]}},
        "b": {"type": "work", "transitions": {"onSuccess": "j1"}},
        "c": {"type": "work", "transitions": {"onSuccess": "j2"}},
        "j1": {"type": "join"},
        "j2": {"type": "join"},
    }))  # fmt: skip
    assert "steps.a.config.branches" in errors
    assert "different joins" in errors["steps.a.config.branches"]


def test_port_to_an_unknown_step_is_an_error() -> None:
    errors = _error_paths(_flow({
        "a": {"type": "work", "transitions": {"ports": {"approve": "ghost"}}},
    }))  # fmt: skip
    assert errors == {"steps.a.transitions.ports.approve": '"ghost" not found'}


def test_switch_expression_that_does_not_parse_names_step_and_case() -> None:
    errors = _error_paths(_flow({
        "a": {"type": "switch", "config": {"cases": [{"when": "x ==", "goto": "b"},
                                                     {"when": "ok", "goto": "b"}],
                                           "default": "b"}},
        "b": {"type": "work"},
    }))  # fmt: skip
    assert list(errors) == ["steps.a.config.cases[0].when"]
    assert "invalid JMESPath" in errors["steps.a.config.cases[0].when"]


def test_switch_goto_unknown_step_is_an_error() -> None:
    errors = _error_paths(_flow({
        "a": {"type": "switch", "config": {"cases": [{"when": "ok", "goto": "nowhere"}]}},
    }))  # fmt: skip
    assert errors == {"steps.a.config.cases[0].goto": '"nowhere" not found'}


def test_every_problem_is_reported_at_once() -> None:
    errors = _error_paths(_flow({
        "a": {"type": "work", "transitions": {"ports": {"p": "ghost"}, "onSuccess": "s"}},
        "s": {"type": "switch", "config": {"cases": [{"when": "((", "goto": "a"}]}},
        "j": {"type": "join"},
    }))  # fmt: skip
    assert {"steps.a.transitions.ports.p", "steps.s.config.cases[0].when", "steps.j"} <= set(errors)


def test_vyuh_graph_with_bad_condition_names_the_edge() -> None:
    bad = {**APPROVAL_GRAPH, "edges": [dict(e) for e in APPROVAL_GRAPH["edges"]]}
    bad["edges"][9]["condition"] = {
        "schemaType": "condition.expression",
        "expression": "review.decision == 'approved' &&",
    }
    with pytest.raises(FlowValidationError) as info:
        load_flow(bad)
    paths = [i.path for i in info.value.issues]
    assert "edges[9].condition.expression" in paths


@handler("work")
async def work(ctx: Any) -> Result:
    return Result.success()


async def test_unknown_handler_type_is_reported_at_registration() -> None:
    from flowmonkey import HandlerRegistry

    handlers = HandlerRegistry()
    handlers.register(noop)
    flow = load_flow(_flow({"a": {"type": "work"}}))
    issues = FlowRegistry().validate(flow, handlers=handlers)
    assert [(i.path, i.severity) for i in issues] == [("steps.a.type", "error")]

"""Vyuh graph (code/nodes/edges) -> Flow."""

from __future__ import annotations

import copy
from typing import Any

import jmespath
import pytest

from flowmonkey.definitions import compile_graph, dump_flow, load_flow, validate_flow
from flowmonkey.definitions.graph_import import is_graph, translate_expression
from flowmonkey.errors import FlowValidationError

# vyuh.md §11, adapted: the forEachLoop container (unsupported) is dropped, a "reject"
# task is added (the example's e6 points at it) and edges wire every node.
APPROVAL: dict[str, Any] = {
    "id": None, "code": "approval", "name": "Approval", "version": 1,
    "isActive": True, "description": None, "metadata": {}, "tags": [],
    "inputSchema": None, "timeouts": {}, "defaultRetryPolicy": None,
    "nodes": [
        {"id": "start", "type": "start", "name": "Start"},
        {"id": "validate", "type": "serviceTask", "name": "Validate",
         "config": {"schemaType": "task.document.validate", "storeAs": "validation"}},
        {"id": "review", "type": "userTask", "name": "Review",
         "config": {"schemaType": "userTask.approval", "signal": "approval_decision",
                    "title": "Approve {{entityName}}", "assignToRole": "approvers",
                    "storeAs": "approvalResult", "priority": "normal"}},
        {"id": "wait24h", "type": "timerEvent",
         "config": {"schemaType": "config.timerEvent", "timerType": "duration",
                    "duration": "24h", "cancellable": True, "storeAs": "timerResult"}},
        {"id": "child", "type": "subflow",
         "config": {"schemaType": "config.subflow", "workflowCode": "VALIDATION",
                    "executionMode": "synchronous", "storeAs": "validationResult"}},
        {"id": "decide", "type": "oneOf", "config": {}},
        {"id": "reject", "type": "serviceTask", "config": {"schemaType": "task.reject"}},
        {"id": "done", "type": "end"},
    ],
    "edges": [
        {"id": "e1", "sourceNodeId": "start", "targetNodeId": "validate"},
        {"id": "e2", "sourceNodeId": "validate", "targetNodeId": "child"},
        {"id": "e3", "sourceNodeId": "child", "targetNodeId": "review"},
        {"id": "e4", "sourceNodeId": "review", "targetNodeId": "decide"},
        {"id": "e5", "sourceNodeId": "decide", "targetNodeId": "done", "label": "Approved",
         "condition": {"schemaType": "condition.expression",
                       "expression": "approvalResult.decision == 'approved'"}},
        {"id": "e6", "sourceNodeId": "decide", "targetNodeId": "reject",
         "condition": {"schemaType": "condition.always"}},
        {"id": "e7", "sourceNodeId": "reject", "targetNodeId": "wait24h"},
        {"id": "e8", "sourceNodeId": "wait24h", "targetNodeId": "done"},
    ],
}  # fmt: skip


def graph(nodes: list[dict[str, Any]], edges: list[tuple[str, str] | dict[str, Any]],
          **top: Any) -> dict[str, Any]:  # fmt: skip
    out_edges = []
    for i, e in enumerate(edges):
        if isinstance(e, tuple):
            e = {"sourceNodeId": e[0], "targetNodeId": e[1]}
        out_edges.append({"id": f"e{i}", **e})
    return {"code": "g", "version": 1, "nodes": nodes, "edges": out_edges, **top}


def node(node_id: str, type_: str = "serviceTask", **config: Any) -> dict[str, Any]:
    if type_ == "serviceTask" and "schemaType" not in config:
        config["schemaType"] = f"do.{node_id}"
    return {"id": node_id, "type": type_, "config": config}


START, END = node("start", "start"), node("end", "end")


def test_is_graph() -> None:
    assert is_graph(APPROVAL)
    assert is_graph({"code": "x"})
    assert not is_graph({"id": "x", "steps": {}})


def test_approval_example_compiles() -> None:
    flow = load_flow(APPROVAL)
    assert (flow.id, flow.version, flow.name) == ("approval", "1.0.0", "Approval")
    assert flow.initial_step_id == "validate"
    s = flow.steps
    assert list(s) == ["validate", "review", "wait24h", "child", "decide", "reject"]
    assert s["validate"].type == "task.document.validate"
    assert s["validate"].output_key == "validation"
    assert s["validate"].name == "Validate"
    assert s["validate"].config == {}
    assert s["validate"].transitions.on_success == "child"

    assert s["review"].type == "userTask"
    assert s["review"].config["title"] == "Approve {{entityName}}"
    assert s["review"].config["role"] == "approvers"
    assert s["review"].config["signal"] == "approval_decision"
    assert s["review"].config["priority"] == "normal"
    assert "assignToRole" not in s["review"].config
    assert s["review"].output_key == "approvalResult"

    assert s["wait24h"].type == "delay"
    assert s["wait24h"].config["duration"] == "24h"
    assert "timerType" not in s["wait24h"].config
    assert s["wait24h"].output_key == "timerResult"
    assert s["wait24h"].transitions.on_success is None  # edge into the end node

    assert s["child"].type == "subflow"
    assert s["child"].config == {"flowId": "VALIDATION"}
    assert s["child"].output_key == "validationResult"

    assert s["decide"].type == "switch"
    assert s["decide"].config == {
        "cases": [{"when": "approvalResult.decision == 'approved'", "goto": None}],
        "default": "reject",
    }
    assert validate_flow(flow) == []


def test_translated_case_evaluates_as_jmespath() -> None:
    flow = load_flow(APPROVAL)
    when = flow.steps["decide"].config["cases"][0]["when"]
    assert jmespath.search(when, {"approvalResult": {"decision": "approved"}}) is True
    assert jmespath.search(when, {"approvalResult": {"decision": "rejected"}}) is False


def test_compiled_graph_round_trips_through_yaml() -> None:
    flow = load_flow(APPROVAL)
    assert load_flow(dump_flow(flow, "yaml")) == flow


def test_allof_fork_and_join() -> None:
    g = graph(
        [START, node("fork", "allOf"), node("a"), node("b"), node("c"),
         node("join", "allOf"), node("after"), END],
        [("start", "fork"), ("fork", "a"), ("fork", "b"), ("fork", "c"),
         ("a", "join"), ("b", "join"), ("c", "join"), ("join", "after"), ("after", "end")],
    )  # fmt: skip
    flow = load_flow(g)
    assert flow.initial_step_id == "fork"
    assert flow.steps["fork"].type == "parallel"
    assert flow.steps["fork"].config == {"branches": ["a", "b", "c"]}
    assert flow.steps["join"].type == "join"
    assert flow.steps["join"].config == {"mode": "all"}
    assert flow.steps["join"].transitions.on_success == "after"
    assert flow.steps["a"].transitions.on_success == "join"
    assert flow.steps["after"].transitions.on_success is None


def test_anyof_fork_makes_its_join_any() -> None:
    g = graph(
        [START, node("race", "anyOf"), node("a"), node("b"), node("join", "allOf"), END],
        [("start", "race"), ("race", "a"), ("race", "b"), ("a", "join"), ("b", "join"),
         ("join", "end")],
    )  # fmt: skip
    flow = load_flow(g)
    assert flow.steps["race"].type == "parallel"
    assert flow.steps["join"].config == {"mode": "any"}
    assert flow.steps["join"].transitions.on_success is None


def test_anyof_join_node_is_any() -> None:
    g = graph(
        [START, node("fork", "allOf"), node("a"), node("b"), node("first", "anyOf"), END],
        [("start", "fork"), ("fork", "a"), ("fork", "b"), ("a", "first"), ("b", "first"),
         ("first", "end")],
    )  # fmt: skip
    assert load_flow(g).steps["first"].config == {"mode": "any"}


def test_join_that_forks_again() -> None:
    g = graph(
        [START, node("f1", "allOf"), node("a"), node("b"), node("mid", "allOf"), node("c"),
         node("d"), node("j2", "allOf"), END],
        [("start", "f1"), ("f1", "a"), ("f1", "b"), ("a", "mid"), ("b", "mid"),
         ("mid", "c"), ("mid", "d"), ("c", "j2"), ("d", "j2"), ("j2", "end")],
    )  # fmt: skip
    flow = load_flow(g)
    assert flow.steps["mid"].type == "join"
    assert flow.steps["mid"].transitions.on_success == "mid__fork"
    assert flow.steps["mid__fork"].config == {"branches": ["c", "d"]}
    assert validate_flow(flow) == []


def test_ports_and_user_task_mapping() -> None:
    g = graph(
        [START, node("ask", "userTask", title="Approve", assignToUser="ann",
                     assignToRole="mgr", storeAs="decision", priority="urgent"),
         node("ship"), node("refund"), END],
        [("start", "ask"),
         {"sourceNodeId": "ask", "targetNodeId": "ship", "sourcePortId": "approve"},
         {"sourceNodeId": "ask", "targetNodeId": "refund", "port": "reject"},
         {"sourceNodeId": "ask", "targetNodeId": "end", "sourcePortId": "cancel"},
         ("ship", "end"), ("refund", "end")],
    )  # fmt: skip
    flow = load_flow(g)
    ask = flow.steps["ask"]
    assert ask.config == {"title": "Approve", "assignee": "ann", "role": "mgr",
                          "priority": "urgent"}  # fmt: skip
    assert ask.output_key == "decision"
    assert ask.transitions.ports == {"approve": "ship", "reject": "refund", "cancel": None}
    assert ask.transitions.on_success is None


def test_signal_timer_and_async_subflow() -> None:
    g = graph(
        [START, node("sig", "signalWait", signal="paid", storeAs="payment"),
         node("at", "timerEvent", timerType="dateTime", dateTime="2030-01-01T00:00:00Z"),
         node("expr", "timerEvent", timerType="dateTime", dateTimeExpression="order.shipBy"),
         node("kid", "subflow", workflowCode="child", executionMode="async", version=3,
              errorStrategy="route"),
         node("oops"), END],
        [("start", "sig"), ("sig", "at"), ("at", "expr"), ("expr", "kid"), ("kid", "end"),
         {"sourceNodeId": "kid", "targetNodeId": "oops", "sourcePortId": "error"},
         ("oops", "end")],
    )  # fmt: skip
    s = load_flow(g).steps
    assert s["sig"].type == "waitForSignal"
    assert s["sig"].config == {"signal": "paid"}
    assert s["sig"].output_key == "payment"
    assert s["at"].config == {"until": "2030-01-01T00:00:00Z"}
    assert s["expr"].config == {"until": "${order.shipBy}"}
    assert s["kid"].config["flowId"] == "child"
    assert s["kid"].config["wait"] is False
    assert s["kid"].config["version"] == "3.0.0"
    assert s["kid"].transitions.on_failure == "oops"
    assert s["kid"].transitions.on_success is None


def test_unknown_node_type_names_the_node() -> None:
    g = copy.deepcopy(APPROVAL)
    g["nodes"].append({"id": "loop", "type": "forEachLoop", "config": {}, "nodeIds": []})
    with pytest.raises(FlowValidationError) as info:
        compile_graph(g)
    issue = info.value.issues[0]
    assert issue.path == "nodes[8].type"
    assert issue.message == 'node "loop": unsupported node type "forEachLoop"'


def test_structural_errors_are_all_reported() -> None:
    g = graph(
        [START, node("a"), node("a"), {"id": "t", "type": "serviceTask"}, node("x", "weird"),
         node("gw", "allOf"), END],
        [("start", "a"), ("a", "ghost"), ("a", "t"), ("a", "gw"), ("t", "end"), ("gw", "end"),
         ("end", "a")],
        code="",
    )  # fmt: skip
    with pytest.raises(FlowValidationError) as info:
        compile_graph(g)
    messages = "\n".join(f"{i.path}: {i.message}" for i in info.value.issues)
    assert 'duplicate node id "a"' in messages
    assert "edges[1].targetNodeId: edge \"e1\": unknown node 'ghost'" in messages
    assert 'task node "t" needs config.schemaType' in messages
    assert 'unsupported node type "weird"' in messages
    assert 'allOf gateway "gw" is neither a fork' in messages
    assert 'node "a" has 2 outgoing edges without a port' in messages
    assert 'end node "end" has outgoing edges' in messages
    assert "code: Required" in messages


def test_start_node_rules() -> None:
    with pytest.raises(FlowValidationError, match="exactly one start node"):
        compile_graph(graph([node("a"), END], [("a", "end")]))
    with pytest.raises(FlowValidationError, match="straight to an end node"):
        compile_graph(graph([START, END], [("start", "end")]))


def test_unsupported_conditions() -> None:
    g = graph(
        [START, node("d", "oneOf"), node("a"), END],
        [("start", "d"),
         {"sourceNodeId": "d", "targetNodeId": "a",
          "condition": {"schemaType": "condition.approved"}},
         {"sourceNodeId": "d", "targetNodeId": "end",
          "condition": {"schemaType": "condition.expression", "expression": "a ~ b"}},
         ("a", "end")],
    )  # fmt: skip
    with pytest.raises(FlowValidationError) as info:
        compile_graph(g)
    paths = [i.path for i in info.value.issues]
    assert paths == ["edges[1].condition", "edges[2].condition.expression"]
    assert "condition.approved" in info.value.issues[0].message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a.b == 'x'", "a.b == 'x'"),
        ('a.b == "x"', "a.b == 'x'"),
        ("n > 5 && ok == true", "n > `5` && ok == `true`"),
        ("a and not b or c", "a && ! b || c"),
        ("x >= -1.5", "x >= `-1.5`"),
        ("v != null", "v != `null`"),
        ("items[0].name == 'x'", "items[0].name == 'x'"),
        ("items.1.name == 'x'", "items[1].name == 'x'"),
        ("a == 'it''s'", None),
        ("a + 1 == 2", None),
        ('name == "it\'s"', "name == 'it\\'s'"),
    ],
)
def test_translate_expression(source: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            translate_expression(source)
        return
    result = translate_expression(source)
    assert result == expected
    jmespath.compile(result)


def test_translated_expressions_evaluate() -> None:
    expr = translate_expression('order.total > 100 and order.kind == "rush"')
    assert jmespath.search(expr, {"order": {"total": 150, "kind": "rush"}}) is True
    assert jmespath.search(expr, {"order": {"total": 50, "kind": "rush"}}) is False
    quoted = translate_expression('name == "it\'s"')
    assert jmespath.search(quoted, {"name": "it's"}) is True

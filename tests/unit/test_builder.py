"""FlowBuilder: NEXT chaining, built-in conveniences, validation, equality with files."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from flowmonkey.definitions import NEXT, FlowBuilder, dump_flow, load_flow
from flowmonkey.definitions.builder import NEXT as NEXT_FROM_MODULE
from flowmonkey.errors import FlowValidationError
from flowmonkey.model.flow import Flow, InputSelector, RetryPolicy


def test_next_is_exported_from_the_builder_module() -> None:
    assert NEXT is NEXT_FROM_MODULE
    assert repr(NEXT) == "NEXT"
    assert copy.deepcopy(NEXT) is NEXT


def test_next_chains_and_none_completes() -> None:
    flow = (
        FlowBuilder("order", name="Orders")
        .step("validate", "validate-order", input={"type": "key", "key": "order"})
        .step("charge", "charge", on_failure="refund", output_key="payment")
        .step("ship", "ship", on_success=None)
        .step("refund", "refund")
        .build()
    )
    steps = flow.steps
    assert (flow.id, flow.version, flow.name) == ("order", "1.0.0", "Orders")
    assert flow.initial_step_id == "validate"
    assert steps["validate"].transitions.on_success == "charge"
    assert steps["validate"].input == InputSelector(type="key", key="order")
    assert steps["charge"].transitions.on_success == "ship"
    assert steps["charge"].transitions.on_failure == "refund"
    assert steps["ship"].transitions.on_success is None
    assert steps["refund"].transitions.on_success is None  # last step: NEXT completes


def test_next_in_failure_and_ports() -> None:
    flow = (
        FlowBuilder("f")
        .step("a", "t", on_success="c", on_failure=NEXT, ports={"x": NEXT, "y": None})
        .step("b", "t", on_success=None)
        .step("c", "t")
        .build()
    )
    trans = flow.steps["a"].transitions
    assert trans.on_failure == "b"
    assert trans.ports == {"x": "b", "y": None}


def test_start_at_version_and_name_setters() -> None:
    flow = (
        FlowBuilder("f")
        .version("3.1.4")
        .name("Named")
        .description("d")
        .step("a", "t", on_success=None)
        .step("b", "t", on_success="a")
        .start_at("b")
        .build()
    )
    assert (flow.version, flow.name, flow.description, flow.initial_step_id) == (
        "3.1.4", "Named", "d", "b"
    )  # fmt: skip


def test_parallel_join_and_switch() -> None:
    flow = (
        FlowBuilder("f")
        .switch("route", [("order.total > `100`", "fork"), ("order.rush", NEXT)], default=None)
        .step("cheap", "t", on_success=None)
        .parallel("fork", ["a", "b"])
        .step("a", "t", on_success="j")
        .step("b", "t", on_success="j")
        .join("j", mode="any")
        .step("after", "t")
        .build()
    )
    assert flow.steps["route"].config == {
        "cases": [
            {"when": "order.total > `100`", "goto": "fork"},
            {"when": "order.rush", "goto": "cheap"},
        ]
    }
    assert "default" not in flow.steps["route"].config
    assert flow.steps["fork"].config == {"branches": ["a", "b"]}
    assert flow.steps["fork"].transitions.on_success is None
    assert flow.steps["j"].config == {"mode": "any"}
    assert flow.steps["j"].transitions.on_success == "after"


def test_switch_default() -> None:
    flow = FlowBuilder("f").switch("s", [("a", "x")], default="y").step("x", "t", on_success=None)
    flow.step("y", "t")
    assert flow.build().steps["s"].config["default"] == "y"


def test_builtin_conveniences() -> None:
    flow = (
        FlowBuilder("f")
        .user_task("approve", "Approve {{order.id}}", role="approvers", priority="high",
                   due_in=timedelta(days=2), form={"type": "object"}, output_key="decision",
                   ports={"reject": None})
        .wait_for_signal("paid", "payment", timeout="1h", on_timeout="cancel")
        .delay("cool", timedelta(minutes=90))
        .delay("until", until=datetime(2030, 1, 1, tzinfo=UTC))
        .subflow("child", "child-flow", version="1.0.0", wait=False, output="result")
        .for_each("each", "order.items", "item-flow", concurrency=4, output_key="items")
        .step("cancel", "t")
        .build()
    )  # fmt: skip
    s = flow.steps
    assert s["approve"].type == "userTask"
    assert s["approve"].config == {
        "title": "Approve {{order.id}}",
        "role": "approvers",
        "priority": "high",
        "dueIn": "2d",
        "form": {"type": "object"},
    }
    assert s["approve"].output_key == "decision"
    assert s["approve"].transitions.ports == {"reject": None}
    assert s["paid"].config == {"signal": "payment", "timeout": "1h"}
    assert s["paid"].transitions.on_timeout == "cancel"
    assert s["cool"].config == {"duration": "1h30m"}
    assert s["until"].config == {"until": "2030-01-01T00:00:00+00:00"}
    assert s["child"].config == {
        "flowId": "child-flow",
        "version": "1.0.0",
        "wait": False,
        "output": "result",
    }
    assert s["each"].config == {"items": "order.items", "flow": "item-flow", "concurrency": 4}
    assert [st.type for st in s.values()] == [
        "userTask", "waitForSignal", "delay", "delay", "subflow", "forEach", "t"
    ]  # fmt: skip


def test_retry_timeout_and_input_forms() -> None:
    flow = (
        FlowBuilder("f")
        .step("a", "t", retry={"maxAttempts": 2, "backoffMs": 100}, timeout="5s",
              input=InputSelector(type="path", path="x.y"))
        .step("b", "t", retry=RetryPolicy(max_attempts=1), timeout=timedelta(seconds=1))
        .step("c", "t", timeout=250)
        .build()
    )  # fmt: skip
    assert flow.steps["a"].retry == RetryPolicy(max_attempts=2, backoff_ms=100)
    assert flow.steps["a"].timeout == timedelta(seconds=5)
    assert flow.steps["a"].input.path == "x.y"
    assert flow.steps["b"].timeout == timedelta(seconds=1)
    assert flow.steps["c"].timeout == timedelta(milliseconds=250)
    assert flow.steps["c"].input == InputSelector()  # default: full context


def test_build_validates_and_reports_everything() -> None:
    builder = (
        FlowBuilder("f")
        .step("a", "t", on_success="ghost")
        .step("a", "t")
        .switch("s", [("a ==", "a")])
        .delay("d")
    )
    with pytest.raises(FlowValidationError) as info:
        builder.build()
    paths = {i.path for i in info.value.issues if i.severity == "error"}
    assert paths == {
        "steps.a",
        "steps.a.transitions.onSuccess",
        "steps.s.config.cases[0].when",
        "steps.d.config",
    }


def test_empty_builder_fails() -> None:
    with pytest.raises(FlowValidationError, match="At least one step"):
        FlowBuilder("f").build()


def test_builder_config_is_copied() -> None:
    config = {"nested": {"v": 1}}
    builder = FlowBuilder("f").step("a", "t", config=config)
    config["nested"]["v"] = 2
    assert builder.build().steps["a"].config == {"nested": {"v": 1}}


def test_build_twice_resolves_next_against_current_steps() -> None:
    builder = FlowBuilder("f").step("a", "t")
    assert builder.build().steps["a"].transitions.on_success is None
    builder.step("b", "t")
    assert builder.build().steps["a"].transitions.on_success == "b"


YAML_EQUIVALENT = """\
id: order
version: 2.0.0
name: Orders
initialStepId: route
steps:
  route:
    id: route
    type: switch
    config:
      cases:
        - {when: "order.total > `100`", goto: fork}
      default: small
  small:
    id: small
    type: small-order
    input: {type: key, key: order}
    outputKey: result.small
    retry: {maxAttempts: 2, backoffMs: 50}
    timeout: 10s
    transitions: {onSuccess: null, onFailure: review}
  fork:
    id: fork
    type: parallel
    config: {branches: [a, b]}
  a: {id: a, type: t, transitions: {onSuccess: j}}
  b: {id: b, type: t, transitions: {onSuccess: j}}
  j: {id: j, type: join, config: {mode: all}, transitions: {onSuccess: review}}
  review:
    id: review
    type: userTask
    config: {title: Review, role: ops}
    outputKey: review
    transitions: {ports: {ok: null, redo: route}}
"""


def build_equivalent() -> Flow:
    return (
        FlowBuilder("order", "2.0.0", "Orders")
        .switch("route", [("order.total > `100`", "fork")], default="small")
        .step("small", "small-order", input={"type": "key", "key": "order"},
              output_key="result.small", retry={"maxAttempts": 2, "backoffMs": 50},
              timeout="10s", on_success=None, on_failure="review")
        .parallel("fork", ["a", "b"])
        .step("a", "t", on_success="j")
        .step("b", "t", on_success="j")
        .join("j", on_success="review")
        .user_task("review", "Review", role="ops", output_key="review", on_success=None,
                   ports={"ok": None, "redo": "route"})
        .build()
    )  # fmt: skip


def test_builder_equals_the_same_definition_loaded_from_a_file() -> None:
    assert build_equivalent() == load_flow(YAML_EQUIVALENT)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_build_dump_load_round_trip(fmt: str) -> None:
    built = build_equivalent()
    text = dump_flow(built, fmt)  # type: ignore[arg-type]
    assert load_flow(text) == built

"""validate_flow: every rule, every problem at once, each with its path."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.definitions import BUILTIN_STEP_TYPES, step_edges, validate_flow
from flowmonkey.definitions.builtins import step_exits
from flowmonkey.definitions.validate import errors_only
from flowmonkey.errors import ValidationIssue
from flowmonkey.model.flow import Flow, Step


def make(steps: dict[str, Any], *, initial: str | None = None, **top: Any) -> Flow:
    data: dict[str, Any] = {
        "id": "f",
        "version": "1.0.0",
        "initialStepId": initial if initial is not None else next(iter(steps), ""),
        "steps": steps,
    }
    data.update(top)
    return Flow.from_dict(data)


def task(type_: str = "t", **kw: Any) -> dict[str, Any]:
    return {"type": type_, **kw}


def errors(issues: list[ValidationIssue]) -> dict[str, str]:
    return {i.path: i.message for i in issues if i.severity == "error"}


def warnings(issues: list[ValidationIssue]) -> dict[str, str]:
    return {i.path: i.message for i in issues if i.severity == "warning"}


def test_valid_flow_has_no_issues() -> None:
    flow = make(
        {
            "a": task(input={"type": "key", "key": "order"}, outputKey="x.y",
                      transitions={"onSuccess": "b", "onFailure": "c"}),
            "b": task(retry={"maxAttempts": 3, "backoffMs": 10, "retryOn": ["X"]},
                      timeout="30s", transitions={"onSuccess": None}),
            "c": task(),
        }
    )  # fmt: skip
    assert validate_flow(flow) == []


def test_reports_every_problem_at_once_with_paths() -> None:
    flow = Flow.from_dict(
        {
            "id": "",
            "version": "",
            "initialStepId": "nope",
            "steps": {
                "a": {"id": "b", "type": "", "input": {"type": "bogus"}, "outputKey": "a..b",
                      "transitions": {"onSuccess": "ghost", "ports": {"ok": "ghost2"}}},
                "charge": {"type": "t", "transitions": {"onFailure": "missing"},
                           "retry": {"maxAttempts": -1}},
            },
        }
    )  # fmt: skip
    errs = errors(validate_flow(flow))
    assert errs["id"] == "Required"
    assert errs["version"] == "Required"
    assert errs["initialStepId"] == 'Step "nope" not found'
    assert errs["steps.a.id"] == 'ID mismatch: "b" vs key "a"'
    assert errs["steps.a.type"] == "Required"
    assert "bogus" in errs["steps.a.input.type"]
    assert "dot path" in errs["steps.a.outputKey"]
    assert errs["steps.a.transitions.onSuccess"] == '"ghost" not found'
    assert errs["steps.a.transitions.ports.ok"] == '"ghost2" not found'
    assert errs["steps.charge.transitions.onFailure"] == '"missing" not found'
    assert "maxAttempts" in next(p for p in errs if p.startswith("steps.charge.retry"))
    assert len(errs) == 11


def test_missing_initial_step_id_and_no_steps() -> None:
    flow = Flow.from_dict({"id": "f", "version": "1.0.0", "steps": {}})
    errs = errors(validate_flow(flow))
    assert errs == {"initialStepId": "Required", "steps": "At least one step required"}


def test_non_semver_version_is_a_warning() -> None:
    issues = validate_flow(make({"a": task()}, version="v-one"))
    assert errors(issues) == {}
    assert "semantic version" in warnings(issues)["version"]
    assert validate_flow(make({"a": task()}, version="2.0.0-rc.1")) == []


@pytest.mark.parametrize(
    ("selector", "path"),
    [
        ({"type": "key"}, "steps.a.input.key"),
        ({"type": "key", "key": 3}, "steps.a.input.key"),
        ({"type": "keys", "keys": "a"}, "steps.a.input.keys"),
        ({"type": "keys", "keys": ["a", 1]}, "steps.a.input.keys"),
        ({"type": "path"}, "steps.a.input.path"),
        ({"type": "path", "path": "a..b"}, "steps.a.input.path"),
        ({"type": "template"}, "steps.a.input.template"),
        ({"type": "nope"}, "steps.a.input.type"),
        ({}, "steps.a.input.type"),
    ],
)
def test_bad_selectors(selector: dict[str, Any], path: str) -> None:
    assert path in errors(validate_flow(make({"a": task(input=selector)})))


@pytest.mark.parametrize(
    "selector",
    [
        {"type": "key", "key": "a.b"},
        {"type": "keys", "keys": []},
        {"type": "keys", "keys": ["a", "b"]},
        {"type": "path", "path": "items.0.name"},
        {"type": "template", "template": {"x": "${a}"}},
        {"type": "template", "template": ""},
        {"type": "full"},
        {"type": "static", "value": None},
        {"type": "static", "value": [1, 2]},
    ],
)
def test_good_selectors(selector: dict[str, Any]) -> None:
    assert validate_flow(make({"a": task(input=selector)})) == []


@pytest.mark.parametrize("key", ["", ".a", "a.", "a..b"])
def test_output_key_must_be_a_dot_path(key: str) -> None:
    assert "steps.a.outputKey" in errors(validate_flow(make({"a": task(outputKey=key)})))


def test_non_string_transition_target() -> None:
    flow = make({"a": task(transitions={"onSuccess": 5, "ports": {"p": ["x"]}})})
    errs = errors(validate_flow(flow))
    assert "step id or null" in errs["steps.a.transitions.onSuccess"]
    assert "step id or null" in errs["steps.a.transitions.ports.p"]


def test_null_targets_complete_and_are_fine() -> None:
    flow = make({"a": task(transitions={"onSuccess": None, "onFailure": None,
                                        "ports": {"done": None}})})  # fmt: skip
    assert validate_flow(flow) == []


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"maxAttempts": -1}, "maxAttempts"),
        ({"maxAttempts": 1.5}, "maxAttempts"),
        ({"maxAttempts": True}, "maxAttempts"),
        ({"maxAttempts": "3"}, "maxAttempts"),
        ({"maxAttempts": 1, "backoffMs": -5}, "backoffMs"),
        ({"maxAttempts": 1, "backoffMultiplier": 0.5}, "backoffMultiplier"),
        ({"maxAttempts": 1, "maxBackoffMs": -1}, "maxBackoffMs"),
        ({"maxAttempts": 1, "retryOn": "TIMEOUT"}, "retryOn"),
        ({"maxAttempts": 1, "retryOn": ["A", 2]}, "retryOn"),
        ({"maxAttempts": 1, "jitter": "yes"}, "jitter"),
    ],
)
def test_bad_retry(retry: dict[str, Any], field: str) -> None:
    errs = errors(validate_flow(make({"a": task(retry=retry)})))
    assert f"steps.a.retry.{field}" in errs
    assert len(errs) == 1


def test_retry_reports_every_bad_field() -> None:
    retry = {"maxAttempts": -1, "backoffMs": -1, "backoffMultiplier": 0, "jitter": 1}
    errs = errors(validate_flow(make({"a": task(retry=retry)})))
    assert set(errs) == {f"steps.a.retry.{f}" for f in
                         ("maxAttempts", "backoffMs", "backoffMultiplier", "jitter")}  # fmt: skip


@pytest.mark.parametrize("timeout", [0, "0s"])
def test_timeout_must_be_positive(timeout: object) -> None:
    assert "steps.a.timeout" in errors(validate_flow(make({"a": task(timeout=timeout)})))


def test_unreachable_steps_are_warnings() -> None:
    flow = make({"a": task(transitions={"onSuccess": None}), "island": task(),
                 "island2": task(transitions={"onSuccess": "island"})})  # fmt: skip
    issues = validate_flow(flow)
    assert errors(issues) == {}
    warns = warnings(issues)
    assert set(warns) == {"steps.island", "steps.island2"}
    assert "unreachable" in warns["steps.island"]


def test_reachability_follows_ports_cases_and_branches() -> None:
    flow = make(
        {
            "start": task(transitions={"ports": {"left": "sw"}}),
            "sw": {"type": "switch",
                   "config": {"cases": [{"when": "x", "goto": "fork"}], "default": None}},
            "fork": {"type": "parallel", "config": {"branches": ["b1", "b2"]}},
            "b1": task(transitions={"onSuccess": "j"}),
            "b2": task(transitions={"onSuccess": "j"}),
            "j": {"type": "join"},
        }
    )  # fmt: skip
    assert validate_flow(flow) == []


def test_unknown_handler_types_are_errors_except_builtins() -> None:
    flow = make(
        {
            "a": task("known", transitions={"onSuccess": "b"}),
            "b": task("unknown", transitions={"onSuccess": "c"}),
            "c": {"type": "delay", "config": {"duration": "1h"}},
        }
    )
    errs = errors(validate_flow(flow, handler_types={"known"}))
    assert errs == {"steps.b.type": 'No handler registered for type "unknown"'}
    assert validate_flow(flow) == []  # no handler list: no check


def test_unknown_step_fields_warn() -> None:
    issues = validate_flow(make({"a": task(outputkey="typo")}))
    assert warnings(issues) == {"steps.a.outputkey": 'unknown step field "outputkey" is ignored'}


# --- built-in configs -------------------------------------------------------------------


def test_parallel_branches() -> None:
    flow = make(
        {
            "p": {"type": "parallel", "config": {"branches": ["a", "ghost", 3, "a"]}},
            "a": task(transitions={"onSuccess": "j"}),
            "j": {"type": "join"},
        }
    )
    errs = errors(validate_flow(flow))
    assert errs["steps.p.config.branches[1]"] == '"ghost" not found'
    assert "step id" in errs["steps.p.config.branches[2]"]
    assert "twice" in errs["steps.p.config.branches[3]"]


@pytest.mark.parametrize("config", [{}, {"branches": []}, {"branches": "a"}])
def test_parallel_needs_branches(config: dict[str, Any]) -> None:
    flow = make({"p": {"type": "parallel", "config": config}})
    assert "steps.p.config.branches" in errors(validate_flow(flow))


def fork_join(join: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    steps: dict[str, Any] = {
        "p": {"type": "parallel", "config": {"branches": ["a", "b"]}},
        "a": task(transitions={"onSuccess": "j"}),
        "b": task(transitions={"onSuccess": "j"}),
        "j": join or {"type": "join"},
    }
    steps.update(extra)
    return steps


def test_join_mode() -> None:
    ok = make(fork_join({"type": "join", "config": {"mode": "any"}}))
    assert validate_flow(ok) == []
    bad = make(fork_join({"type": "join", "config": {"mode": "some"}}))
    assert "steps.j.config.mode" in errors(validate_flow(bad))


def test_join_reached_by_no_fork_is_rejected() -> None:
    flow = make({"a": task(transitions={"onSuccess": "j"}), "j": {"type": "join"}})
    assert "not reached by the branches of any parallel" in errors(validate_flow(flow))["steps.j"]


def test_fork_whose_branches_reach_different_joins_is_rejected() -> None:
    flow = make(
        {
            "p": {"type": "parallel", "config": {"branches": ["a", "b"]}},
            "a": task(transitions={"onSuccess": "j1"}),
            "b": task(transitions={"onSuccess": "j2"}),
            "j1": {"type": "join", "transitions": {"onSuccess": "end"}},
            "j2": {"type": "join", "transitions": {"onSuccess": "end"}},
            "end": task(),
        }
    )
    errs = errors(validate_flow(flow))
    assert errs["steps.p.config.branches"] == (
        'the branches of parallel step "p" reach different joins: "j1", "j2"'
    )


def test_branch_that_never_joins_is_rejected() -> None:
    flow = make(
        {
            "p": {"type": "parallel", "config": {"branches": ["a", "b"]}},
            "a": task(transitions={"onSuccess": "j"}),
            "b": task(transitions={"onSuccess": None}),
            "j": {"type": "join"},
        }
    )
    errs = errors(validate_flow(flow))
    assert errs == {"steps.p.config.branches[1]": 'branch "b" never reaches a join step'}


def test_nested_fork_join_pairs() -> None:
    flow = make(
        {
            "outer": {"type": "parallel", "config": {"branches": ["inner", "c"]}},
            "inner": {"type": "parallel", "config": {"branches": ["a", "b"]}},
            "a": task(transitions={"onSuccess": "ij"}),
            "b": task(transitions={"onSuccess": "ij"}),
            "ij": {"type": "join", "transitions": {"onSuccess": "oj"}},
            "c": task(transitions={"onSuccess": "oj"}),
            "oj": {"type": "join"},
        }
    )
    assert validate_flow(flow) == []


def test_switch_cases() -> None:
    flow = make(
        {
            "s": {
                "type": "switch",
                "config": {
                    "cases": [
                        {"when": "order.total > `100`", "goto": "a"},
                        {"when": "a ==", "goto": "a"},
                        {"goto": "a"},
                        {"when": "x", "goto": "ghost"},
                        {"when": "x"},
                        "nope",
                    ],
                    "default": 7,
                },
            },
            "a": task(),
        }
    )
    errs = errors(validate_flow(flow))
    assert "invalid JMESPath expression 'a =='" in errs["steps.s.config.cases[1].when"]
    assert errs["steps.s.config.cases[2].when"] == "Required: a JMESPath expression"
    assert errs["steps.s.config.cases[3].goto"] == '"ghost" not found'
    assert "Required" in errs["steps.s.config.cases[4].goto"]
    assert "object" in errs["steps.s.config.cases[5]"]
    assert "step id" in errs["steps.s.config.default"]
    assert "steps.s.config.cases[0].when" not in errs


def test_switch_needs_cases_or_default() -> None:
    assert "steps.s.config.cases" in errors(validate_flow(make({"s": {"type": "switch"}})))
    flow = make({"s": {"type": "switch", "config": {"cases": "x"}}})
    assert "steps.s.config.cases" in errors(validate_flow(flow))


def test_switch_transitions_are_ignored_warning() -> None:
    flow = make({"s": {"type": "switch", "config": {"cases": [{"when": "a", "goto": None}]},
                       "transitions": {"onSuccess": "s2"}}, "s2": task()})  # fmt: skip
    assert "ignored" in warnings(validate_flow(flow))["steps.s.transitions"]


@pytest.mark.parametrize(
    ("config", "bad"),
    [
        ({}, {"items", "flow"}),
        ({"items": "a..b", "flow": 3}, {"items", "flow"}),
        ({"items": "xs", "flow": "child", "concurrency": 0}, {"concurrency"}),
        ({"items": "xs", "flow": "child", "concurrency": True}, {"concurrency"}),
        ({"items": "xs", "flow": "child", "version": 2}, {"version"}),
        ({"items": "xs", "flow": "child", "concurrency": 3, "version": "1.0.0"}, set()),
    ],
)
def test_for_each_config(config: dict[str, Any], bad: set[str]) -> None:
    errs = errors(validate_flow(make({"e": {"type": "forEach", "config": config}})))
    assert set(errs) == {f"steps.e.config.{k}" for k in bad}


@pytest.mark.parametrize(
    ("config", "bad"),
    [
        ({}, {"flowId"}),
        ({"flowId": "c", "wait": "no", "output": "", "version": 1}, {"wait", "output", "version"}),
        ({"flowId": "c", "wait": False, "output": "result.x", "version": "2.0.0"}, set()),
    ],
)
def test_subflow_config(config: dict[str, Any], bad: set[str]) -> None:
    errs = errors(validate_flow(make({"s": {"type": "subflow", "config": config}})))
    assert set(errs) == {f"steps.s.config.{k}" for k in bad}


def test_wait_for_signal_config() -> None:
    assert validate_flow(make({"w": {"type": "waitForSignal"}})) == []
    ok = make({"w": {"type": "waitForSignal", "config": {"signal": "go", "timeout": "1h"}}})
    assert validate_flow(ok) == []
    bad = make({"w": {"type": "waitForSignal", "config": {"signal": 1, "timeout": "soon"}}})
    assert set(errors(validate_flow(bad))) == {"steps.w.config.signal", "steps.w.config.timeout"}


def test_user_task_config() -> None:
    good = {
        "title": "Approve {{order.id}}",
        "assignee": "ann",
        "role": "approvers",
        "priority": "high",
        "dueIn": "2d",
        "form": {"type": "object", "properties": {"approved": {"type": "boolean"}}},
    }
    assert validate_flow(make({"u": {"type": "userTask", "config": good}})) == []
    bad = {"assignee": 1, "priority": "asap", "dueIn": "later", "form": {"type": "nonsense"}}
    errs = errors(validate_flow(make({"u": {"type": "userTask", "config": bad}})))
    assert set(errs) == {f"steps.u.config.{k}" for k in
                         ("title", "assignee", "priority", "dueIn", "form")}  # fmt: skip
    assert "not a valid JSON Schema" in errs["steps.u.config.form"]
    not_object = make({"u": {"type": "userTask", "config": {"title": "t", "form": [1]}}})
    assert "JSON Schema object" in errors(validate_flow(not_object))["steps.u.config.form"]


@pytest.mark.parametrize(
    ("form", "error", "warning"),
    [
        ({"$schema": 5}, "steps.u.config.form.$schema", None),
        ({"$schema": "http://example.com/mine", "type": "object"}, None,
         "steps.u.config.form.$schema"),
        ({"properties": {"a": {"pattern": "["}}}, "steps.u.config.form", None),
        ({"$schema": "http://json-schema.org/draft-07/schema#", "type": 3},
         "steps.u.config.form", None),
        ({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}, None, None),
    ],
)  # fmt: skip
def test_user_task_form_schema_edge_cases(
    form: dict[str, Any], error: str | None, warning: str | None
) -> None:
    issues = validate_flow(
        make({"u": {"type": "userTask", "config": {"title": "t", "form": form}}})
    )
    assert list(errors(issues)) == ([error] if error else [])
    assert list(warnings(issues)) == ([warning] if warning else [])


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"duration": "1d2h30m"}, None),
        ({"duration": 500}, None),
        ({"until": "2030-01-01T00:00:00Z"}, None),
        ({"until": "${order.shipBy}"}, None),
        ({}, "steps.d.config"),
        ({"duration": "1h", "until": "2030-01-01T00:00:00Z"}, "steps.d.config"),
        ({"duration": "soon"}, "steps.d.config.duration"),
        ({"until": "tomorrow"}, "steps.d.config.until"),
        ({"until": "x ${a}"}, "steps.d.config.until"),
    ],
)
def test_delay_config(config: dict[str, Any], path: str | None) -> None:
    errs = errors(validate_flow(make({"d": {"type": "delay", "config": config}})))
    assert list(errs) == ([path] if path else [])


# --- cycles -----------------------------------------------------------------------------


def test_switch_loop_with_no_way_out_warns() -> None:
    flow = make(
        {
            "s1": {"type": "switch", "config": {"cases": [{"when": "a", "goto": "s2"}],
                                                "default": "s2"}},
            "s2": {"type": "switch", "config": {"cases": [], "default": "s1"}},
        }
    )  # fmt: skip
    warns = warnings(validate_flow(flow))
    assert "cycle with no wait" in warns["steps.s1"]
    assert '"s1", "s2"' in warns["steps.s1"]


def test_switch_self_loop_warns() -> None:
    flow = make({"s": {"type": "switch", "config": {"cases": [], "default": "s"}}})
    assert "cycle" in warnings(validate_flow(flow))["steps.s"]


@pytest.mark.parametrize(
    "steps",
    [
        # a handler step whose success port leaves the loop
        {"s": {"type": "switch", "config": {"cases": [], "default": "t"}},
         "t": task(transitions={"onSuccess": "s", "ports": {"done": None}})},
        # a handler step in a loop that waits elsewhere in it
        {"t": task(transitions={"onSuccess": "d"}),
         "d": {"type": "delay", "config": {"duration": "1s"}, "transitions": {"onSuccess": "t"}}},
        # a wait in the loop
        {"s": {"type": "switch", "config": {"cases": [], "default": "w"}},
         "w": {"type": "waitForSignal", "transitions": {"onSuccess": "s"}}},
        # no default: NO_MATCH leaves the loop
        {"s": {"type": "switch", "config": {"cases": [{"when": "a", "goto": "s"}]}}},
        # a case completes the flow
        {"s": {"type": "switch", "config": {"cases": [{"when": "a", "goto": None}],
                                            "default": "s"}}},
    ],
)  # fmt: skip
def test_loops_with_a_way_out_do_not_warn(steps: dict[str, Any]) -> None:
    assert not any("cycle" in i.message for i in validate_flow(make(steps)))


@pytest.mark.parametrize(
    "steps",
    [
        {"s": {"type": "switch", "config": {"cases": [], "default": "t"}},
         "t": task(transitions={"onSuccess": "s"})},
        {"a": task(transitions={"onSuccess": "b"}), "b": task(transitions={"onSuccess": "a"})},
        # a failure route is not a way out of a loop that succeeds
        {"a": task(transitions={"onSuccess": "a", "onFailure": None})},
    ],
)  # fmt: skip
def test_handler_loop_with_no_wait_and_no_exit_warns(steps: dict[str, Any]) -> None:
    """Issue 9, item 8 (SEMANTICS.md): it would run until max_steps."""
    issues = validate_flow(make(steps))
    assert not errors_only(issues)
    (warning,) = [i for i in issues if "cycle" in i.message]
    assert warning.severity == "warning"
    assert "no wait and no exit" in warning.message and "max_steps" in warning.message


# --- step_edges -------------------------------------------------------------------------


def test_step_edges_cover_everything() -> None:
    step = Step.from_dict(
        {"id": "s", "type": "switch",
         "config": {"cases": [{"when": "a", "goto": "x"}, {"when": "b", "goto": None}],
                    "default": "y"},
         "transitions": {"onFailure": "z", "ports": {"p": "w", "q": None}}}
    )  # fmt: skip
    assert step_edges(step) == [
        ("config.cases[0].goto", "x"),
        ("config.default", "y"),
        ("transitions.onFailure", "z"),
        ("transitions.ports.p", "w"),
    ]
    assert ("config.cases[1].goto", None) in step_exits(step)
    assert ("transitions.ports.q", None) in step_exits(step)
    # a switch never completes through onSuccess; a task does
    assert ("transitions.onSuccess", None) not in step_exits(step)
    assert ("transitions.onSuccess", None) in step_exits(Step(id="t", type="t"))
    fork = Step.from_dict({"id": "p", "type": "parallel", "config": {"branches": ["a", "b"]}})
    assert step_edges(fork) == [("config.branches[0]", "a"), ("config.branches[1]", "b")]


def test_builtin_types_constant() -> None:
    assert {"parallel", "join", "switch", "forEach", "subflow", "waitForSignal", "userTask",
            "delay"} == BUILTIN_STEP_TYPES  # fmt: skip

"""Parsing reports every unparseable field at its own path and keeps going.

Regression tests: a bad ``timeout`` (or a ``config``/``retry``/``transitions``/``input``
that is not an object) used to raise inside ``Step.from_dict`` and hide every other
problem, at the path ``steps.a``; an unquoted YAML ``version: 1.10`` became ``"1.1"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowmonkey.definitions import load_flow, parse_flow, validate_flow
from flowmonkey.definitions.loader import check_flow
from flowmonkey.definitions.validate import validate_parsed
from flowmonkey.errors import FlowValidationError, ValidationIssue
from flowmonkey.model.flow import Flow, Step


def flow_dict(**steps: Any) -> dict[str, Any]:
    return {"id": "f", "version": "1.0.0", "initialStepId": "a", "steps": steps}


def error_paths(issues: list[ValidationIssue]) -> list[str]:
    return [i.path for i in issues if i.severity == "error"]


BAD_STEP = {
    "type": "t",
    "timeout": "soon",
    "retry": 3,
    "config": ["x"],
    "input": "order",
    "transitions": {"onSuccess": "b", "ports": ["ok"]},
}


def test_every_bad_field_of_a_step_is_reported_with_its_path() -> None:
    with pytest.raises(FlowValidationError) as info:
        Flow.from_dict(flow_dict(a=BAD_STEP, b={"type": "t"}))
    err = info.value
    assert err.code == "INVALID_FLOW"
    assert sorted(error_paths(err.issues)) == [
        "steps.a.config",
        "steps.a.input",
        "steps.a.retry",
        "steps.a.timeout",
        "steps.a.transitions.ports",
    ]
    messages = {i.path: i.message for i in err.issues}
    assert '"soon" is not a duration' in messages["steps.a.timeout"]
    assert not messages["steps.a.timeout"].startswith("timeout:")
    assert "got a list" in messages["steps.a.config"]
    assert "got the number 3" in messages["steps.a.retry"]
    assert err.flow_id == "f"
    assert "5 problem(s)" in str(err)


def test_transitions_that_are_not_an_object() -> None:
    with pytest.raises(FlowValidationError) as info:
        Flow.from_dict(flow_dict(a={"type": "t", "transitions": "b", "timeout": [1]}))
    assert error_paths(info.value.issues) == ["steps.a.transitions", "steps.a.timeout"]


def test_problems_of_several_steps_are_all_reported() -> None:
    data = flow_dict(
        a={"type": "t", "timeout": "soon", "transitions": {"onSuccess": "b"}},
        b={"type": "t", "config": 5},
        c="not a step",
    )
    with pytest.raises(FlowValidationError) as info:
        Flow.from_dict(data)
    assert error_paths(info.value.issues) == ["steps.a.timeout", "steps.b.config", "steps.c"]


def test_load_flow_lists_parse_issues_and_validation_issues_of_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: f\n"
        "version: 1.10\n"
        "initialStepId: a\n"
        "steps:\n"
        "  a:\n"
        "    type: t\n"
        "    timeout: soon\n"
        "    retry: 3\n"
        "    outputKey: 'a..b'\n"
        "    transitions: {onSuccess: b}\n"
        "  b:\n"
        "    type: t\n"
        "    config: [1]\n"
        "    input: {type: key}\n"
        "    transitions: {onSuccess: ghost}\n"
    )
    with pytest.raises(FlowValidationError) as info:
        load_flow(path)
    err = info.value
    assert sorted(error_paths(err.issues)) == [
        "steps.a.outputKey",  # validation of the well-formed parts goes on
        "steps.a.retry",
        "steps.a.timeout",
        "steps.b.config",
        "steps.b.input.key",
        "steps.b.transitions.onSuccess",
        "version",
    ]
    assert str(err).startswith(f"{path}: ")
    assert "7 problem(s)" in str(err)


def test_validation_issues_under_an_unparseable_part_are_not_repeated() -> None:
    # config is not an object, so the delay step's "needs duration or until" would only
    # restate it; version is a number, so "version: Required" would too.
    data = flow_dict(a={"type": "delay", "config": "2s"})
    data["version"] = 2
    flow, issues = check_flow(data)
    assert [(i.path, i.severity) for i in issues] == [
        ("version", "error"),
        ("steps.a.config", "error"),
    ]
    assert flow.steps["a"].config == {}
    # Without the parse issues the defaults would be reported (the filter is what hides them).
    found = {i.path: i.message for i in validate_flow(flow) if i.severity == "error"}
    assert found["version"] == "Required"
    assert "needs exactly one of 'duration' or 'until'" in found["steps.a.config"]


def test_graph_checks_are_skipped_when_edges_did_not_parse() -> None:
    data = flow_dict(a={"type": "t", "transitions": ["b"]}, b={"type": "t"})
    flow, parse_issues = Flow.parse(data)
    # b looks unreachable only because a's transitions were dropped.
    assert "steps.b" in [i.path for i in validate_flow(flow)]
    issues = validate_parsed(flow, parse_issues)
    assert [i.path for i in issues] == ["steps.a.transitions"]


def test_graph_checks_still_run_when_only_other_fields_failed() -> None:
    data = flow_dict(a={"type": "t", "timeout": "soon"}, orphan={"type": "t"})
    _, issues = check_flow(data)
    assert [(i.path, i.severity) for i in issues] == [
        ("steps.a.timeout", "error"),
        ("steps.orphan", "warning"),
    ]


def test_a_step_that_is_not_an_object_still_satisfies_references() -> None:
    data = flow_dict(a={"type": "t", "transitions": {"onSuccess": "b"}}, b=["t"])
    _, issues = check_flow(data)
    # Only the step itself: no 'steps.a.transitions.onSuccess: "b" not found'.
    assert [i.path for i in issues] == ["steps.b"]
    assert "got a list" in issues[0].message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (1.1, 'YAML reads an unquoted 1.10 as the number 1.1, so quote it (version: "1.10")'),
        (1, 'quote it in YAML and use a semantic version (version: "1.0.0")'),
        (True, "got the boolean true"),
        (["1"], "got a list"),
    ],
)
def test_non_string_version_is_an_error_not_stringified(value: object, fragment: str) -> None:
    data = flow_dict(a={"type": "t"})
    data["version"] = value
    with pytest.raises(FlowValidationError) as info:
        Flow.from_dict(data)
    (issue,) = info.value.issues
    assert (issue.path, issue.severity) == ("version", "error")
    assert issue.message.startswith("must be a string")
    assert fragment in issue.message


def test_unquoted_yaml_version_is_reported_with_the_hint() -> None:
    text = "id: f\nversion: 1.10\ninitialStepId: a\nsteps:\n  a: {type: t}\n"
    with pytest.raises(FlowValidationError) as info:
        load_flow(text)
    assert [i.path for i in info.value.issues] == ["version"]
    assert 'quote it (version: "1.10")' in str(info.value)
    quoted = text.replace("1.10", '"1.10"')
    assert load_flow(quoted).version == "1.10"


@pytest.mark.parametrize("name", ["id", "initialStepId"])
def test_non_string_id_and_initial_step_are_errors(name: str) -> None:
    data = flow_dict(a={"type": "t"})
    data[name] = 7
    with pytest.raises(FlowValidationError) as info:
        Flow.from_dict(data)
    assert [(i.path, i.message) for i in info.value.issues] == [
        (name, f'must be a string, got the number 7 (quote it in YAML: {name}: "7")')
    ]


def test_non_string_step_id_is_reported_at_its_path() -> None:
    data = {"id": "f", "version": "1.0.0", "initialStepId": "1", "steps": {"1": {"id": 1,
            "type": "t"}}}  # fmt: skip
    with pytest.raises(FlowValidationError) as info:
        Flow.from_dict(data)
    assert [i.path for i in info.value.issues] == ["steps.1.id"]


def test_parse_flow_raises_with_every_parse_issue() -> None:
    with pytest.raises(FlowValidationError) as info:
        parse_flow(flow_dict(a={"type": "t", "timeout": "x", "retry": "y"}))
    assert error_paths(info.value.issues) == ["steps.a.retry", "steps.a.timeout"]


def test_step_from_dict_still_raises_value_error_naming_every_field() -> None:
    with pytest.raises(ValueError) as info:
        Step.from_dict({"id": "a", "type": "t", "timeout": "soon", "config": 1})
    message = str(info.value)
    assert "config: must be an object" in message
    assert 'timeout: "soon" is not a duration' in message
    with pytest.raises(ValueError, match=r"^a step must be an object"):
        Step.from_dict("a")


def test_step_parse_prefixes_paths() -> None:
    step, issues = Step.parse({"type": "t", "input": 3}, key="x", path="steps.x")
    assert step.id == "x"
    assert [i.path for i in issues] == ["steps.x.input"]


def test_nulls_mean_absent() -> None:
    step = Step.from_dict(
        {"id": "a", "type": "t", "config": None, "input": None, "retry": None,
         "timeout": None, "transitions": {"ports": None}}
    )  # fmt: skip
    assert step == Step(id="a", type="t")


def test_steps_list_item_without_id() -> None:
    data = flow_dict()
    data["steps"] = [{"id": "a", "type": "t"}, {"type": "t"}, "x"]
    with pytest.raises(FlowValidationError) as info:
        Flow.from_dict(data)
    assert error_paths(info.value.issues) == ["steps[1]", "steps[2]"]


def test_round_trip_still_holds() -> None:
    data = flow_dict(
        a={"type": "t", "timeout": "PT1M30S", "retry": {"maxAttempts": 2},
           "config": {"k": 1}, "input": {"type": "key", "key": "x"},
           "transitions": {"onSuccess": "b", "ports": {"p": "b"}}},
        b={"type": "t"},
    )  # fmt: skip
    flow = Flow.from_dict(data)
    assert flow.steps["a"].timeout is not None
    assert flow.steps["a"].timeout.total_seconds() == 90
    assert Flow.from_dict(flow.to_dict()) == flow
    assert load_flow(flow.to_dict()) == flow


def test_a_valid_flow_has_no_parse_issues() -> None:
    flow, issues = Flow.parse(flow_dict(a={"type": "t"}))
    assert issues == []
    assert flow.key == "f@1.0.0"

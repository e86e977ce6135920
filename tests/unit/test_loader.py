"""load_flow / parse_flow / dump_flow / load_flows: files, text, dicts, errors, round trips."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowmonkey.definitions import dump_flow, load_flow, load_flows, parse_flow
from flowmonkey.errors import FlowValidationError
from flowmonkey.model.flow import Flow

# The shape of reference/flowmonkey.md §1.5 / §2 (camelCase, FlowMonkey file form).
ORDER_YAML = """\
id: process-order
version: 1.2.0
name: Order processing
initialStepId: validate
tags: [orders]
steps:
  validate:
    id: validate
    type: validate-order
    config: {strict: true}
    input: {type: key, key: order}
    outputKey: validated
    retry: {maxAttempts: 3, backoffMs: 200, backoffMultiplier: 2, maxBackoffMs: 60000,
            retryOn: [TIMEOUT]}
    timeout: 30000
    transitions:
      onSuccess: charge
      onFailure: notify
  charge:
    id: charge
    type: charge
    input: {type: template, template: {amount: "${order.total}", note: "for ${order.id}"}}
    outputKey: payment.result
    transitions:
      onSuccess: ship
      onFailure: notify
      ports: {approve: ship, reject: notify}
  ship:
    id: ship
    type: ship
    input: {type: keys, keys: [order, payment]}
    transitions: {onSuccess: null}
  notify:
    id: notify
    type: notify
    input: {type: static, value: {channel: email}}
    transitions: {}
"""


def order_dict() -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load(ORDER_YAML)
    return data


def test_load_yaml_string() -> None:
    flow = load_flow(ORDER_YAML)
    assert flow.id == "process-order"
    assert flow.version == "1.2.0"
    assert flow.initial_step_id == "validate"
    assert list(flow.steps) == ["validate", "charge", "ship", "notify"]
    validate = flow.steps["validate"]
    assert validate.timeout == timedelta(seconds=30)
    assert validate.retry is not None and validate.retry.retry_on == ("TIMEOUT",)
    assert flow.steps["charge"].transitions.ports == {"approve": "ship", "reject": "notify"}
    assert flow.extra == {"tags": ["orders"]}


def test_load_dict_and_json_string_give_equal_flows() -> None:
    data = order_dict()
    from_dict = load_flow(data)
    from_json = load_flow(json.dumps(data))
    assert from_dict == from_json == load_flow(ORDER_YAML)


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_load_files(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"order{suffix}"
    text = json.dumps(order_dict()) if suffix == ".json" else ORDER_YAML
    path.write_text(text, encoding="utf-8")
    assert load_flow(path) == load_flow(str(path)) == load_flow(ORDER_YAML)


def test_file_flow_loads_unchanged() -> None:
    """A FlowMonkey file's dict form comes back from to_dict (same keys, same values)."""
    data = order_dict()
    out = load_flow(data).to_dict()
    assert out["steps"]["validate"]["retry"] == {
        "maxAttempts": 3,
        "backoffMs": 200,
        "retryOn": ["TIMEOUT"],
    }  # fmt: skip  (defaults are omitted)
    assert out["steps"]["charge"] == data["steps"]["charge"]
    assert out["steps"]["notify"] == data["steps"]["notify"]
    assert out["tags"] == ["orders"]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_dump_and_load_round_trip(fmt: str) -> None:
    flow = load_flow(ORDER_YAML)
    text = dump_flow(flow, fmt)  # type: ignore[arg-type]
    assert load_flow(text) == flow
    assert Flow.from_dict(flow.to_dict()) == flow


def test_dump_json_is_plain_json() -> None:
    data = json.loads(dump_flow(load_flow(ORDER_YAML)))
    assert data["steps"]["ship"]["input"] == {"type": "keys", "keys": ["order", "payment"]}


def test_dump_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="json"):
        dump_flow(load_flow(ORDER_YAML), "toml")  # type: ignore[arg-type]


def test_yaml_timestamps_stay_strings() -> None:
    text = """\
id: d
version: 1.0.0
initialStepId: wait
steps:
  wait: {id: wait, type: delay, config: {until: 2030-01-01T00:00:00Z}}
"""
    flow = load_flow(text)
    assert flow.steps["wait"].config["until"] == "2030-01-01T00:00:00Z"
    assert load_flow(dump_flow(flow, "yaml")) == flow


def test_invalid_flow_raises_with_all_issues(tmp_path: Path) -> None:
    data = order_dict()
    data["steps"]["charge"]["transitions"]["onSuccess"] = "ghost"
    data["steps"]["ship"]["input"] = {"type": "path"}
    data["version"] = "one"
    with pytest.raises(FlowValidationError) as info:
        load_flow(data)
    err = info.value
    assert err.code == "INVALID_FLOW"
    paths = {(i.path, i.severity) for i in err.issues}
    assert ("steps.charge.transitions.onSuccess", "error") in paths
    assert ("steps.ship.input.path", "error") in paths
    assert ("version", "warning") in paths
    assert "steps.charge.transitions.onSuccess" in str(err)
    assert "2 problem(s)" in str(err)

    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(data))
    with pytest.raises(FlowValidationError, match=r"bad\.yaml: flow \"process-order\""):
        load_flow(path)


def test_handler_types_are_checked_when_given() -> None:
    with pytest.raises(FlowValidationError) as info:
        load_flow(ORDER_YAML, handler_types={"validate-order", "charge", "ship"})
    assert [i.path for i in info.value.issues if i.severity == "error"] == ["steps.notify.type"]


def test_warnings_do_not_block_loading() -> None:
    data = order_dict()
    data["steps"]["orphan"] = {"id": "orphan", "type": "x"}
    assert "orphan" in load_flow(data).steps


def test_parse_flow_does_not_validate() -> None:
    data = order_dict()
    data["initialStepId"] = "nowhere"
    assert parse_flow(data).initial_step_id == "nowhere"


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(FlowValidationError, match=r"nope\.yaml: cannot read flow file"):
        load_flow(path)
    with pytest.raises(FlowValidationError, match=r"nope\.json"):
        load_flow(str(tmp_path / "nope.json"))


def test_bad_json_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text('{\n  "id": "x",\n  "version": 1.0.0\n}\n')
    with pytest.raises(FlowValidationError) as info:
        load_flow(path)
    assert f"{path}:3:" in str(info.value)
    assert "invalid JSON" in str(info.value)


def test_bad_yaml_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text("id: x\nversion: 1.0.0\nsteps:\n  a: [unclosed\n")
    with pytest.raises(FlowValidationError) as info:
        load_flow(path)
    message = str(info.value)
    assert str(path) in message and "invalid YAML" in message
    assert f"{path}:5:" in message


def test_bad_json_string_reports_line() -> None:
    with pytest.raises(FlowValidationError, match=r"<string>:2:\d+: invalid JSON"):
        load_flow('{"id": "x",\n "steps": {,}}')


def test_long_one_line_yaml_is_text_not_a_path() -> None:
    long_text = "id: " + "x" * 5000  # too long for a file name: must not raise OSError
    flow = parse_flow(long_text)
    assert flow.id == "x" * 5000
    with pytest.raises(FlowValidationError, match="initialStepId: Required"):
        load_flow(long_text)


def test_yaml_flow_mapping_that_is_not_json_still_loads() -> None:
    text = "{id: f, version: 1.0.0, initialStepId: a, steps: {a: {id: a, type: t}}}"
    assert load_flow(text).steps["a"].type == "t"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_non_mapping_documents_are_rejected(text: str) -> None:
    with pytest.raises(FlowValidationError, match="must be an object"):
        load_flow(text)


def test_unparseable_step_in_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        "id: f\nversion: 1.0.0\ninitialStepId: a\nsteps:\n  a: {type: t, timeout: soon}\n"
    )
    with pytest.raises(FlowValidationError) as info:
        load_flow(path)
    assert str(info.value).startswith(f"{path}: ")
    assert info.value.issues[0].path == "steps.a.timeout"


def test_load_flows_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(ORDER_YAML)
    other = order_dict()
    other["id"] = "another"
    (tmp_path / "a.json").write_text(json.dumps(other))
    (tmp_path / "notes.txt").write_text("ignored")
    flows = load_flows([tmp_path])
    assert [f.id for f in flows] == ["another", "process-order"]
    assert [f.id for f in load_flows([tmp_path / "b.yaml"])] == ["process-order"]


def test_vyuh_graph_is_detected_by_load_flow() -> None:
    graph = {
        "code": "tiny",
        "version": 2,
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "work", "type": "serviceTask", "config": {"schemaType": "do.work"}},
            {"id": "end", "type": "end"},
        ],
        "edges": [
            {"id": "e1", "sourceNodeId": "start", "targetNodeId": "work"},
            {"id": "e2", "sourceNodeId": "work", "targetNodeId": "end"},
        ],
    }
    flow = load_flow(graph)
    assert (flow.id, flow.version, flow.initial_step_id) == ("tiny", "2.0.0", "work")
    assert load_flow(json.dumps(graph)) == flow

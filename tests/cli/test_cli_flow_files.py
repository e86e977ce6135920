"""``validate`` and ``graph``: flow files, no store needed."""

from __future__ import annotations

from pathlib import Path

from clitools import APPROVAL, ORDER, Invoke, json_out

BROKEN = """\
id: broken
version: 1.0.0
initialStepId: a
steps:
  a:
    id: a
    type: greet
    transitions: {onSuccess: nowhere}
  lonely:
    id: lonely
    type: greet
"""


def test_validate_valid_files(invoke: Invoke) -> None:
    result = invoke("validate", str(ORDER / "flow.yaml"), str(APPROVAL / "flow.yaml"))
    assert result.exit_code == 0, result.output
    assert f"{ORDER / 'flow.yaml'} (order-processing@1.0.0): valid" in result.stdout
    assert "(expense-approval@1.0.0): valid" in result.stdout


def test_validate_reports_every_issue_and_exits_1(invoke: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN)
    result = invoke("validate", str(ORDER / "flow.yaml"), str(bad))
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "(order-processing@1.0.0): valid" in out
    assert "bad.yaml (broken@1.0.0): 1 error(s), 1 warning(s)" in out
    assert "error   steps.a.transitions.onSuccess:" in out
    assert "warning steps.lonely" in out
    assert "Traceback" not in result.output


def test_validate_json(invoke: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN)
    doc = json_out(invoke("--json", "validate", str(bad), str(APPROVAL / "flow.yaml")))
    assert doc["valid"] is False
    broken, approval = doc["files"]
    assert broken["valid"] is False
    assert {i["severity"] for i in broken["issues"]} == {"error", "warning"}
    assert all({"path", "message", "severity"} <= set(i) for i in broken["issues"])
    assert approval == {
        "file": str(APPROVAL / "flow.yaml"), "flow_id": "expense-approval",
        "version": "1.0.0", "issues": [], "valid": True,
    }  # fmt: skip


def test_validate_with_handlers_checks_types(invoke: Invoke) -> None:
    flow = str(ORDER / "flow.yaml")
    ok = invoke("validate", flow, "--handlers", str(ORDER / "handlers.py"))
    assert ok.exit_code == 0, ok.output
    wrong = invoke("validate", flow, "--handlers", str(APPROVAL / "handlers.py"))
    assert wrong.exit_code == 1
    assert 'No handler registered for type "charge-payment"' in wrong.stdout


def test_validate_unparseable_file_is_an_issue(invoke: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    result = invoke("validate", str(bad))
    assert result.exit_code == 1
    assert "invalid YAML" in result.stdout


def test_graph_prints_mermaid(invoke: Invoke) -> None:
    result = invoke("graph", str(ORDER / "flow.yaml"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("flowchart TD\n")
    assert "charge-payment" in result.stdout
    assert '-->|"failure"|' in result.stdout
    doc = json_out(invoke("--json", "graph", str(APPROVAL / "flow.yaml")))
    assert doc["flow_id"] == "expense-approval"
    assert doc["mermaid"].startswith("flowchart")

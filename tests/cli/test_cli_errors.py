"""User mistakes: one ``error: ...`` line on stderr, exit 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clitools import APPROVAL, ORDER, Invoke, approval_run, assert_user_error, json_out

FLOW = str(APPROVAL / "flow.yaml")
HANDLERS = ("--handlers", str(APPROVAL / "handlers.py"))


def test_bad_json_input_names_the_position(invoke: Invoke) -> None:
    result = invoke("run", FLOW, *HANDLERS, "--input", '{"expense": ')
    assert_user_error(result, "--input", "invalid JSON at line 1, column 13")


def test_input_must_be_an_object(invoke: Invoke) -> None:
    assert_user_error(invoke("run", FLOW, *HANDLERS, "--input", "[1, 2]"), "JSON object")


def test_input_file_missing(invoke: Invoke) -> None:
    result = invoke("run", FLOW, *HANDLERS, "--input", "@nope.json")
    assert_user_error(result, "--input @nope.json", "no such file")


def test_input_file_with_bad_json(invoke: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "in.json"
    bad.write_text('{\n  "a": 1,\n}')
    result = invoke("run", FLOW, *HANDLERS, "--input", f"@{bad}")
    assert_user_error(result, "invalid JSON at line 3, column 1")


def test_nan_is_not_json(invoke: Invoke) -> None:
    assert_user_error(invoke("run", FLOW, *HANDLERS, "--input", '{"a": NaN}'), "NaN")


def test_bad_resume_data(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    result = invoke("resume", execution_id, *HANDLERS, "--data", "{approved: true}")
    assert_user_error(result, "--data", "invalid JSON")
    # Nothing changed.
    assert json_out(invoke("--json", "status", execution_id))["status"] == "waiting"


def test_missing_flow_file(invoke: Invoke) -> None:
    assert_user_error(invoke("run", "nope.yaml", *HANDLERS), "nope.yaml", "not found")
    assert_user_error(invoke("graph", "nope.yaml"), "not found")
    assert_user_error(invoke("validate", "nope.yaml"), "not found")


def test_unparseable_flow_file(invoke: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "flow.yaml"
    bad.write_text("id: x\nsteps: [\n")
    assert_user_error(invoke("run", str(bad)), "invalid YAML")
    assert_user_error(invoke("graph", str(bad)), "invalid YAML")


def test_invalid_flow_prints_every_issue(invoke: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "flow.yaml"
    bad.write_text(
        "id: broken\nversion: 1.0.0\ninitialStepId: missing\nsteps:\n"
        "  a: {id: a, type: submit-expense, transitions: {onSuccess: nowhere}}\n"
    )
    result = invoke("run", str(bad), *HANDLERS)
    assert_user_error(result, "is invalid", "problem(s)")
    detail = result.stderr.splitlines()[1:]
    assert any("initialStepId" in line for line in detail)
    assert any("steps.a.transitions.onSuccess" in line for line in detail)


def test_missing_handlers(invoke: Invoke) -> None:
    assert_user_error(invoke("run", FLOW), "needs handlers", "--handlers")


def test_bad_handlers_module(invoke: Invoke, tmp_path: Path) -> None:
    assert_user_error(invoke("run", FLOW, "--handlers", "no.such.module"), "no.such.module")
    assert_user_error(invoke("run", FLOW, "--handlers", "missing.py"), "missing.py")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    assert_user_error(invoke("run", FLOW, "--handlers", str(broken)), "boom")
    twice = tmp_path / "twice.py"
    twice.write_text((APPROVAL / "handlers.py").read_text())
    result = invoke("run", FLOW, *HANDLERS, "--handlers", str(twice))
    assert_user_error(result, "--handlers")


def test_handlers_file_can_import_its_siblings(invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / "cli_sibling_helper.py").write_text("GREETING = 'hi'\n")
    (tmp_path / "sibling_handlers.py").write_text(
        "from __future__ import annotations\n"
        "from cli_sibling_helper import GREETING\n"
        "from flowmonkey import handler\n"
        "@handler('say')\n"
        "async def say(ctx):\n"
        "    return {'said': GREETING}\n"
    )
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({
        "id": "sibling", "version": "1.0.0", "initialStepId": "s",
        "steps": {"s": {"id": "s", "type": "say", "outputKey": "out"}},
    }))  # fmt: skip
    result = invoke("--json", "run", str(flow), "--handlers", str(tmp_path / "sibling_handlers.py"))
    assert result.exit_code == 0, result.output
    assert json_out(result)["context"]["out"] == {"said": "hi"}


@pytest.mark.parametrize(
    "args",
    [
        ("status", "nope"),
        ("history", "nope"),
        ("events", "nope"),
        ("cancel", "nope"),
        ("resume", "nope", "--data", "{}"),
        ("signal", "nope", "step"),
    ],
)
def test_unknown_execution_id(invoke: Invoke, args: tuple[str, ...]) -> None:
    assert_user_error(invoke(*args), 'Execution "nope" not found')


def test_resume_of_a_finished_execution(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    assert invoke("resume", execution_id, *HANDLERS, "--data", '{"approved": true}').exit_code == 0
    again = invoke("resume", execution_id, *HANDLERS, "--data", '{"approved": true}')
    assert_user_error(again, "is not waiting", "completed")


def test_resume_with_wrong_token(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    result = invoke("resume", execution_id, *HANDLERS, "--token", "forged", "--data", "{}")
    assert_user_error(result, "Invalid resume token")
    assert json_out(invoke("--json", "status", execution_id))["status"] == "waiting"


def test_resume_without_handlers_changes_nothing(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    assert_user_error(invoke("resume", execution_id, "--data", "{}"), "--handlers")
    assert json_out(invoke("--json", "status", execution_id))["status"] == "waiting"


def test_signal_to_a_step_that_is_not_waiting(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    result = invoke("signal", execution_id, "decide", *HANDLERS)
    assert_user_error(result, "not waiting at step")
    assert json_out(invoke("--json", "status", execution_id))["status"] == "waiting"


def test_cancel_of_a_finished_execution(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    assert invoke("cancel", execution_id).exit_code == 0
    assert_user_error(invoke("cancel", execution_id), "cannot cancel")


def test_changed_flow_with_the_same_version(invoke: Invoke, tmp_path: Path) -> None:
    approval_run(invoke)
    changed = tmp_path / "flow.yaml"
    changed.write_text(
        (APPROVAL / "flow.yaml").read_text().replace("Expense approval", "Changed name")
    )
    result = invoke("run", str(changed), *HANDLERS, "--input", f"@{APPROVAL / 'input.json'}")
    assert_user_error(result, "different definition")


def test_bad_store_url(invoke: Invoke) -> None:
    assert_user_error(invoke("--store", "bogus://x", "list", store=False), "bogus://x")
    assert_user_error(invoke("--store", "sqlite:///", "list", store=False), "--store")


def test_errors_in_json_mode_are_json_too(invoke: Invoke) -> None:
    result = invoke("--json", "status", "nope")
    assert result.exit_code == 2
    assert json_out(result)["error"]["code"] == "EXECUTION_NOT_FOUND"
    assert result.stderr.startswith("error: ")


def test_unknown_option_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("run", str(ORDER / "flow.yaml"), "--bogus")
    assert result.exit_code == 2
    assert "Traceback" not in result.output

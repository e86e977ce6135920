"""Issue 9 item 4: JSON arguments the stores cannot hold, bad cursors and bad flow files
are one ``error: ...`` line and exit 2, never a traceback; nothing changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from clitools import APPROVAL, Invoke, approval_run, assert_user_error, json_out

FLOW = str(APPROVAL / "flow.yaml")
HANDLERS = ("--handlers", str(APPROVAL / "handlers.py"))

DEEP = "[" * 100_000 + "]" * 100_000
"""100k levels: Python's json parser recurses and would raise RecursionError."""

_BAD_VALUES = [
    pytest.param("[" + "9" * 5000 + "]", "beyond 64 bits", id="5000-digit-int"),
    pytest.param("[18446744073709551616]", "[0]: integer is beyond 64 bits", id="2**64"),
    pytest.param("[-9223372036854775809]", "[0]: integer is beyond 64 bits", id="-2**63-1"),
    pytest.param(DEEP, "nested deeper than 128 levels", id="100k-deep"),
    pytest.param("[" * 200 + "]" * 200, "nested deeper than 128 levels", id="200-deep"),
    pytest.param('["\\ud800"]', "lone surrogate", id="lone-surrogate"),
]


def _as_object(value: str) -> str:
    return '{"v": ' + value + "}"


@pytest.mark.parametrize(("value", "fragment"), _BAD_VALUES)
def test_bad_input_is_a_user_error(invoke: Invoke, value: str, fragment: str) -> None:
    result = invoke("run", FLOW, *HANDLERS, "--input", _as_object(value))
    assert_user_error(result, "--input", fragment)
    assert json_out(invoke("--json", "list"))["items"] == []  # nothing was created


def test_bad_input_from_a_file_names_the_file(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text(_as_object(DEEP))
    result = invoke("run", FLOW, *HANDLERS, "--input", f"@{path}")
    assert_user_error(result, f"--input @{path}", "nested deeper than 128 levels")


@pytest.mark.parametrize(("value", "fragment"), _BAD_VALUES)
def test_bad_resume_data_and_signal_payload_change_nothing(
    invoke: Invoke, value: str, fragment: str
) -> None:
    execution_id = approval_run(invoke)
    result = invoke("resume", execution_id, *HANDLERS, "--data", _as_object(value))
    assert_user_error(result, "--data", fragment)
    result = invoke(
        "signal", execution_id, "request-approval", *HANDLERS, "--payload", _as_object(value)
    )
    assert_user_error(result, "--payload", fragment)
    assert json_out(invoke("--json", "status", execution_id))["status"] == "waiting"


def test_largest_and_smallest_64_bit_integers_are_accepted(invoke: Invoke) -> None:
    # The bound is the stores' (orjson: signed and unsigned 64 bits), not stricter.
    execution_id = approval_run(invoke)
    data = '{"approved": true, "big": 18446744073709551615, "small": -9223372036854775808}'
    result = invoke("--json", "resume", execution_id, *HANDLERS, "--data", data)
    assert result.exit_code == 0, result.output
    assert json_out(result)["context"]["resumeData"]["big"] == 2**64 - 1


@pytest.mark.parametrize("cursor", ["garbage", "W10=", "%%%"])
def test_bad_cursor_is_a_user_error(invoke: Invoke, cursor: str) -> None:
    assert_user_error(invoke("list", "--cursor", cursor), "Invalid cursor")
    result = invoke("--json", "list", "--cursor", cursor)
    assert result.exit_code == 2
    assert json_out(result)["error"]["code"] == "INVALID_CURSOR"


def test_flow_file_with_duplicate_step_ids_is_a_user_error(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "id: dup\nversion: 1.0.0\ninitialStepId: a\nsteps:\n"
        "  a: {type: waitForSignal}\n  a: {type: delay, config: {duration: 1s}}\n"
    )
    assert_user_error(invoke("run", str(path)), f"{path}:6:3", "duplicate key 'a'")
    result = invoke("validate", str(path))
    assert result.exit_code == 1  # validate's "found errors"
    assert "duplicate key 'a'" in result.output


def test_flow_file_with_a_duration_beyond_the_maximum_is_a_user_error(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(
        "id: long\nversion: 1.0.0\ninitialStepId: a\nsteps:\n"
        "  a: {type: waitForSignal, config: {timeout: 9999999d}}\n"
    )
    assert_user_error(invoke("run", str(path)), "steps.a.config.timeout", "3650 days")

"""Helpers shared by the CLI tests (imported as ``clitools``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from click.testing import Result

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ORDER = EXAMPLES / "order_processing"
APPROVAL = EXAMPLES / "approval"


class Invoke(Protocol):
    """The ``invoke`` fixture: run the CLI against the test's store."""

    def __call__(self, *args: str, store: bool = True, input: str | None = None) -> Result: ...


def json_out(result: Result) -> Any:
    """The one JSON document a ``--json`` command printed on stdout."""
    return json.loads(result.stdout)


def run_order(invoke: Invoke, *extra: str, input_file: str = "input.json") -> Result:
    """Run the order-processing example."""
    return invoke(
        "run", str(ORDER / "flow.yaml"),
        "--handlers", str(ORDER / "handlers.py"),
        "--input", f"@{ORDER / input_file}",
        *extra,
    )  # fmt: skip


def approval_run(invoke: Invoke) -> str:
    """Run the approval example until it waits; return the execution id."""
    result = invoke(
        "--json", "run", str(APPROVAL / "flow.yaml"),
        "--handlers", str(APPROVAL / "handlers.py"),
        "--input", f"@{APPROVAL / 'input.json'}",
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    doc = json_out(result)
    assert doc["status"] == "waiting"
    return str(doc["id"])


def assert_user_error(result: Result, *fragments: str) -> None:
    """Exit 2, one ``error: ...`` line on stderr naming every fragment, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines, result.output
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

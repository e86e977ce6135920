"""``flowmonkey retry ID``: a failed execution runs again from its failed step."""

from __future__ import annotations

from pathlib import Path

from clitools import Invoke, assert_user_error, json_out

FLOW = """
id: gate
version: 1.0.0
initialStepId: check
steps:
  check:
    type: gate
    outputKey: checked
    transitions: {onSuccess: null}
"""

HANDLERS = """
from pathlib import Path
from flowmonkey import Result, handler

@handler("gate")
async def gate(ctx):
    if Path(ctx.context["open_file"]).exists():
        return Result.success({"passed": True})
    return Result.failure("CLOSED", "the gate file does not exist")
"""


def test_retry_a_failed_execution_after_the_cause_is_fixed(invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "handlers.py").write_text(HANDLERS)
    gate = tmp_path / "open"
    handlers = ["--handlers", str(tmp_path / "handlers.py")]
    first = invoke(
        "--json", "run", str(tmp_path / "flow.yaml"), *handlers,
        "--input", f'{{"open_file": "{gate}"}}',
    )  # fmt: skip
    assert first.exit_code == 1, first.output
    execution_id = json_out(first)["id"]
    gate.write_text("")
    again = invoke("--json", "retry", execution_id, *handlers)
    assert again.exit_code == 0, again.output
    doc = json_out(again)
    assert doc["status"] == "completed"
    assert doc["run_number"] == 2
    assert doc["context"]["checked"] == {"passed": True}
    assert_user_error(invoke("retry", execution_id, *handlers), "cannot be retried", "completed")

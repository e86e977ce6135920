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


def test_bulk_cancel_and_retry_by_filter(invoke: Invoke, tmp_path: Path) -> None:
    from clitools import approval_run

    waiting = [approval_run(invoke) for _ in range(2)]
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "handlers.py").write_text(HANDLERS)
    handlers = ["--handlers", str(tmp_path / "handlers.py")]
    failed = [
        json_out(invoke("--json", "run", str(tmp_path / "flow.yaml"), *handlers,
                        "--input", f'{{"open_file": "{tmp_path / "never"}"}}'))["id"]
        for _ in range(3)
    ]  # fmt: skip
    dry = invoke("--json", "cancel", "--filter", "status=waiting", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert json_out(dry) == {"matched": 2, "succeeded": 2, "failed": [], "dry_run": True}
    for execution_id in waiting:
        assert json_out(invoke("--json", "status", execution_id))["status"] == "waiting"
    done = invoke("cancel", "--filter", "status=waiting", "--filter", "flow_id=expense-approval",
                  "--reason", "spring cleaning")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "cancelled 2 of 2 matched" in done.stdout
    for execution_id in waiting:
        doc = json_out(invoke("--json", "status", execution_id))
        assert doc["status"] == "cancelled"
        assert doc["cancellation"]["reason"] == "spring cleaning"
    retried = invoke("--json", "retry", "--filter", "flow_id=gate")
    assert retried.exit_code == 0, retried.output
    assert json_out(retried)["succeeded"] == 3
    for execution_id in failed:
        doc = json_out(invoke("--json", "status", execution_id))
        assert doc["status"] == "pending" and doc["run_number"] == 2
    # Everything matched but none is failed any more: each is listed, exit 1.
    again = invoke("--json", "retry", "--filter", "flow_id=gate")
    assert again.exit_code == 1
    assert {f["code"] for f in json_out(again)["failed"]} == {"EXECUTION_NOT_FAILED"}
    assert_user_error(invoke("cancel"), "--filter")
    assert_user_error(invoke("cancel", "--filter", "colour=red"), "colour=red")
    assert_user_error(invoke("retry", "--filter", "created_after=yesterday"), "ISO 8601")

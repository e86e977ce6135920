"""``flowmonkey tick`` and the advice printed after ``run`` stops at a wait."""

from __future__ import annotations

import re
import time
from pathlib import Path

from clitools import APPROVAL, Invoke, assert_user_error, json_out

HANDLERS = """
from flowmonkey import handler


@handler("greet")
def greet(ctx):
    return {"message": f"Hello, {ctx.input}!"}
"""


def reminder(tmp_path: Path, duration: str) -> tuple[str, str]:
    """A flow that waits ``duration`` (a durable ``delay``) and then greets."""
    flow = tmp_path / "reminder.yaml"
    flow.write_text(
        "id: reminder\n"
        "version: 1.0.0\n"
        "initialStepId: wait\n"
        "steps:\n"
        "  wait:\n"
        "    id: wait\n"
        "    type: delay\n"
        f"    config: {{duration: {duration}}}\n"
        "    transitions: {onSuccess: greet}\n"
        "  greet:\n"
        "    id: greet\n"
        "    type: greet\n"
        "    input: {type: key, key: name}\n"
        "    outputKey: greeting\n"
    )
    handlers = tmp_path / "handlers.py"
    handlers.write_text(HANDLERS)
    return str(flow), str(handlers)


def start(invoke: Invoke, flow: str, handlers: str, *extra: str) -> str:
    result = invoke(
        "--json", "run", flow, "--handlers", handlers, "--input", '{"name": "Ada"}',
        "--max-wait", "0", *extra,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    return str(json_out(result)["id"])


def test_timer_wait_advice_names_worker_and_tick_not_resume(
    invoke: Invoke, tmp_path: Path, store_url: str
) -> None:
    flow, handlers = reminder(tmp_path, "1h")
    result = invoke("run", flow, "--handlers", handlers, "--input", '{"name": "Ada"}',
                    "--max-wait", "0")  # fmt: skip
    assert result.exit_code == 3, result.output
    out = result.stdout
    assert "the timer is durable: once due at " in out
    assert f"flowmonkey --store {store_url} worker --handlers {handlers}" in out
    assert f"flowmonkey --store {store_url} tick --handlers {handlers}" in out
    assert " resume " not in out
    assert "resume it early" not in out


def test_waiting_progress_line_names_the_wake_time_once(invoke: Invoke, tmp_path: Path) -> None:
    flow, handlers = reminder(tmp_path, "1h")
    result = invoke("run", flow, "--handlers", handlers, "--input", '{"name": "Ada"}',
                    "--max-wait", "0")  # fmt: skip
    (line,) = [x for x in result.stdout.splitlines() if "waiting at wait:" in x]
    assert re.search(r"waiting at wait: delay until \S+$", line), line
    assert line.count(" until ") == 1, line


def test_signal_wait_advice_still_says_resume(invoke: Invoke, store_url: str) -> None:
    handlers = str(APPROVAL / "handlers.py")
    result = invoke(
        "run", str(APPROVAL / "flow.yaml"), "--handlers", handlers,
        "--input", f"@{APPROVAL / 'input.json'}",
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "to continue it, run:" in result.stdout
    assert f"--store {store_url} resume " in result.stdout
    assert " tick " not in result.stdout and " worker " not in result.stdout


def test_tick_with_nothing_due(invoke: Invoke, tmp_path: Path) -> None:
    flow, handlers = reminder(tmp_path, "1h")
    execution_id = start(invoke, flow, handlers)
    result = invoke("tick", "--handlers", handlers)
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.stdout
    assert json_out(invoke("--json", "tick", "--handlers", handlers)) == {"driven": 0}
    status = json_out(invoke("--json", "status", execution_id))
    assert status["status"] == "waiting"


def test_tick_drives_a_due_timer_to_completion(invoke: Invoke, tmp_path: Path) -> None:
    flow, handlers = reminder(tmp_path, "200ms")
    execution_id = start(invoke, flow, handlers)
    time.sleep(0.3)
    # Once due, resume is refused (the wake is applied first) - tick is the way on.
    result = invoke("tick", "--handlers", handlers)
    assert result.exit_code == 0, result.output
    assert "drove 1 execution(s)" in result.stdout
    assert "greet completed" in result.stdout  # progress lines
    status = json_out(invoke("--json", "status", execution_id))
    assert status["status"] == "completed"
    assert status["context"]["greeting"] == {"message": "Hello, Ada!"}
    assert json_out(invoke("--json", "tick", "--handlers", handlers)) == {"driven": 0}


def test_tick_json_counts_every_execution(invoke: Invoke, tmp_path: Path) -> None:
    flow, handlers = reminder(tmp_path, "200ms")
    ids = [start(invoke, flow, handlers) for _ in range(2)]
    time.sleep(0.3)
    result = invoke("--json", "tick", "--handlers", handlers)
    assert result.exit_code == 0, result.output
    assert json_out(result) == {"driven": 2}
    for execution_id in ids:
        assert json_out(invoke("--json", "status", execution_id))["status"] == "completed"


def test_tick_refuses_without_the_handlers_a_due_execution_needs(
    invoke: Invoke, tmp_path: Path
) -> None:
    flow, handlers = reminder(tmp_path, "200ms")
    execution_id = start(invoke, flow, handlers)
    time.sleep(0.3)
    assert_user_error(invoke("tick"), 'needs handlers for "greet"', "--handlers")
    # Nothing changed: the execution did not fail with HANDLER_NOT_FOUND.
    assert json_out(invoke("--json", "status", execution_id))["status"] == "waiting"
    assert json_out(invoke("--json", "tick", "--handlers", handlers)) == {"driven": 1}


def test_tick_ignores_handlers_of_executions_that_are_not_due(
    invoke: Invoke, tmp_path: Path
) -> None:
    flow, handlers = reminder(tmp_path, "1h")
    start(invoke, flow, handlers)
    result = invoke("tick")  # no handlers, but nothing is due: fine
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.stdout


def test_tick_is_listed_in_help(invoke: Invoke) -> None:
    helped = invoke("tick", "--help", store=False)
    assert helped.exit_code == 0
    assert "due timers" in helped.stdout

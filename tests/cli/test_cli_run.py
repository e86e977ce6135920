"""``run``, ``resume``, ``signal`` and ``cancel``: exit codes 0 / 1 / 3 and output."""

from __future__ import annotations

from pathlib import Path

from clitools import APPROVAL, ORDER, Invoke, approval_run, json_out, run_order

APPROVAL_HANDLERS = ("--handlers", str(APPROVAL / "handlers.py"))


def test_run_completes_with_live_progress_and_summary(invoke: Invoke) -> None:
    result = run_order(invoke)
    assert result.exit_code == 0, result.output
    out = result.stdout
    # Live progress, one line per step event, with timings.
    assert "[start]   validate-order started" in out
    assert "validate-order completed in" in out
    assert "charge-payment failed in" in out and "GATEWAY_UNAVAILABLE" in out
    assert "charge-payment retry 1/3 in 50.0 ms" in out
    assert "charge-payment retry 2/3 in 100.0 ms" in out
    assert "charge-payment started (attempt 3)" in out
    assert "ship completed" in out
    # Summary with the context as JSON.
    assert "status:    completed" in out
    assert '"trackingNumber": "TRK-A-1001"' in out


def test_run_json_is_one_document(invoke: Invoke) -> None:
    result = run_order(invoke, "--json")
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert doc["status"] == "completed"
    assert doc["flow_id"] == "order-processing"
    assert doc["context"]["payment"] == {"chargeId": "CH-A-1001", "amount": 28.0, "attempts": 3}
    assert doc["finished_at"].startswith("20")  # ISO time
    assert [h["outcome"] for h in doc["history"]].count("failure") == 2
    # Progress still goes somewhere readable, but not into the JSON on stdout.
    assert "charge-payment retry" in result.stderr


def test_run_failure_route_exits_1(invoke: Invoke) -> None:
    result = run_order(invoke, "--json", input_file="input-declined.json")
    assert result.exit_code == 1, result.output
    doc = json_out(result)
    assert doc["status"] == "failed"
    assert doc["error"]["code"] == "ORDER_FAILED"
    assert doc["error"]["step_id"] == "notify-failure"
    assert "PAYMENT_DECLINED" in doc["error"]["message"]
    assert [h["step_id"] for h in doc["history"]] == [
        "validate-order", "reserve-stock", "charge-payment", "notify-failure",
    ]  # fmt: skip


def test_run_human_failure_summary(invoke: Invoke) -> None:
    result = run_order(invoke, input_file="input-declined.json")
    assert result.exit_code == 1
    assert "status:    failed" in result.stdout
    assert "charge-payment failed -> notify-failure" in result.stdout
    assert "ORDER_FAILED at notify-failure" in result.stdout


def test_run_waiting_exits_3_and_says_how_to_resume(invoke: Invoke, store_url: str) -> None:
    result = invoke(
        "run", str(APPROVAL / "flow.yaml"), *APPROVAL_HANDLERS,
        "--input", f"@{APPROVAL / 'input.json'}",
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    out = result.stdout
    assert "status:    waiting (waiting for manager)" in out
    assert "waiting at request-approval: waiting for manager" in out
    line = next(x for x in out.splitlines() if " resume " in x)
    assert f"--store {store_url} resume " in line
    assert f"--handlers {APPROVAL / 'handlers.py'}" in line


def test_run_then_resume_across_invocations(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    # Second invocation: a new engine; the flow comes from the store, not from a file.
    result = invoke(
        "--json", "resume", execution_id, "--data", '{"approved": true, "by": "boss"}',
        *APPROVAL_HANDLERS,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert doc["status"] == "completed"
    assert doc["context"]["outcome"]["decision"] == "approved"
    assert doc["context"]["outcome"]["by"] == "boss"
    assert doc["context"]["resumeData"] == {"approved": True, "by": "boss"}


def test_resume_with_token_from_context(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    status = json_out(invoke("--json", "status", execution_id))
    token = status["context"]["approvalRequest"]["resumeToken"]
    result = invoke(
        "resume", execution_id, "--token", token, "--data", '{"approved": false}',
        *APPROVAL_HANDLERS,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"decision": "rejected"' in result.stdout


def test_resume_data_from_file(invoke: Invoke, tmp_path: Path) -> None:
    execution_id = approval_run(invoke)
    data = tmp_path / "answer.json"
    data.write_text('{"approved": true}')
    result = invoke("resume", execution_id, "--data", f"@{data}", *APPROVAL_HANDLERS)
    assert result.exit_code == 0, result.output


def test_resume_that_ends_in_failure_exits_1(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    result = invoke("resume", execution_id, "--data", '{"approved": "maybe"}', *APPROVAL_HANDLERS)
    assert result.exit_code == 1, result.output
    assert "INVALID_DECISION" in result.stdout


def test_signal_continues_on_the_waiting_step(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    result = invoke(
        "--json", "signal", execution_id, "request-approval",
        "--payload", '{"approved": false, "by": "cfo"}', *APPROVAL_HANDLERS,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json_out(result)
    assert doc["context"]["outcome"]["decision"] == "rejected"
    assert doc["context"]["approval"] == {"approved": False, "by": "cfo"}


def test_cancel_waiting_execution(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    result = invoke("cancel", execution_id, "--reason", "no longer needed")
    assert result.exit_code == 0, result.output
    assert f"cancelled {execution_id}" in result.stdout
    doc = json_out(invoke("--json", "status", execution_id))
    assert doc["status"] == "cancelled"
    assert doc["cancellation"]["reason"] == "no longer needed"


def test_cancel_json(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    doc = json_out(invoke("cancel", execution_id, "--json"))
    assert doc["cancelled"] is True
    assert doc["previous_status"] == "waiting"
    assert doc["execution"]["status"] == "cancelled"


def test_idempotency_key_returns_the_same_execution(invoke: Invoke) -> None:
    first = json_out(run_order(invoke, "--json", "--idempotency-key", "order-A-1001"))
    second = run_order(invoke, "--json", "--idempotency-key", "order-A-1001")
    assert second.exit_code == 0
    assert json_out(second)["id"] == first["id"]
    assert "already used" in second.stderr


def test_run_with_tenant(invoke: Invoke) -> None:
    doc = json_out(run_order(invoke, "--json", "--tenant", "acme"))
    assert doc["tenant_id"] == "acme"


def test_options_after_the_command_name(invoke: Invoke, store_url: str) -> None:
    result = run_order(invoke, "--store", store_url, "--json")
    assert result.exit_code == 0
    assert json_out(result)["status"] == "completed"


def test_store_from_environment(store_url: str) -> None:
    from click.testing import CliRunner

    from flowmonkey.cli import cli

    runner = CliRunner(env={"FLOWMONKEY_STORE": store_url})
    args = [
        "--json", "run", str(ORDER / "flow.yaml"), "--handlers", str(ORDER / "handlers.py"),
        "--input", f"@{ORDER / 'input.json'}",
    ]  # fmt: skip
    assert runner.invoke(cli, args).exit_code == 0
    listed = runner.invoke(cli, ["--json", "list"])
    assert len(json_out(listed)["items"]) == 1


def test_max_wait_zero_stops_at_the_retry_backoff(invoke: Invoke, tmp_path: Path) -> None:
    # The example's 50 ms backoff, made an hour long: the resume below must find the
    # execution still in its retry wait however slow the machine is (once the backoff
    # has passed, the wait is over and ``resume`` rightly refuses: it is not waiting);
    # the gateway fails once only, so the resumed attempt succeeds.
    flow = tmp_path / "flow.yaml"
    slow = "backoffMs: 3600000, backoffMultiplier: 2, maxBackoffMs: 3600000"
    text = (ORDER / "flow.yaml").read_text()
    assert "backoffMs: 50, backoffMultiplier: 2, maxBackoffMs: 1000" in text
    text = text.replace("backoffMs: 50, backoffMultiplier: 2, maxBackoffMs: 1000", slow)
    assert "failFirstAttempts: 2" in text
    flow.write_text(text.replace("failFirstAttempts: 2", "failFirstAttempts: 1"))
    result = invoke(
        "--json", "run", str(flow), "--handlers", str(ORDER / "handlers.py"),
        "--input", f"@{ORDER / 'input.json'}", "--max-wait", "0",
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    doc = json_out(result)
    assert doc["status"] == "waiting"
    assert doc["retry_attempts"] == {"charge-payment": 1}
    # A later resume of the durable retry wait picks it up and finishes the order.
    again = invoke("--json", "resume", doc["id"], "--handlers", str(ORDER / "handlers.py"))
    assert again.exit_code == 0, again.output
    assert json_out(again)["context"]["payment"]["attempts"] >= 2


def test_version_and_help(invoke: Invoke) -> None:
    version = invoke("--version", store=False)
    assert version.exit_code == 0 and "flowmonkey" in version.stdout
    helped = invoke("--help", store=False)
    assert helped.exit_code == 0
    for command in ("run", "resume", "signal", "cancel", "status", "history", "list",
                    "events", "flows", "validate", "graph"):  # fmt: skip
        assert command in helped.stdout


def test_cancel_from_a_process_without_the_flow_ends_cancelled(
    invoke: Invoke, store_url: str
) -> None:
    """Issue 9, items 3 and 8: an app registered the flow in code only (it is not in
    the store); ``flowmonkey cancel`` still ends in ``cancelled`` with its record and
    event, never ``failed FLOW_NOT_FOUND``."""
    import asyncio

    from flowmonkey import FlowBuilder, Result, handler
    from flowmonkey.stores import open_store
    from flowmonkey.testing import make_engine

    @handler("hold")
    async def hold(ctx: object) -> Result:
        return Result.wait(reason="on hold")

    flow = FlowBuilder("code-only").step("hold", "hold").build()

    async def start() -> str:
        async with make_engine([hold], [flow], store=open_store(store_url)) as engine:
            result = await engine.start("code-only", {})
            assert (await engine.store.get_flow("code-only")) is None
            return result.execution.id

    execution_id = asyncio.run(start())
    result = invoke("cancel", execution_id, "--reason", "stop it")
    assert result.exit_code == 0, result.output
    doc = json_out(invoke("--json", "status", execution_id))
    assert doc["status"] == "cancelled"
    assert doc.get("error") is None
    assert doc["cancellation"]["source"] == "user"
    assert doc["cancellation"]["reason"] == "stop it"
    events = json_out(invoke("--json", "events", execution_id))["events"]
    assert events[-1]["type"] == "execution.cancelled"
    assert "execution.failed" not in [e["type"] for e in events]

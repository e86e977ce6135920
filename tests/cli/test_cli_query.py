"""``status``, ``history``, ``list``, ``events`` and ``flows``."""

from __future__ import annotations

from clitools import Invoke, approval_run, json_out, run_order


def test_status_human_and_json(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    human = invoke("status", execution_id)
    assert human.exit_code == 0, human.output
    assert "status:    waiting (waiting for manager)" in human.stdout
    assert "step:      request-approval" in human.stdout
    doc = json_out(invoke("--json", "status", execution_id))
    assert doc["id"] == execution_id
    assert doc["status"] == "waiting"
    assert doc["current_step_id"] == "request-approval"
    assert doc["created_at"].endswith("+00:00")


def test_history_table_and_json(invoke: Invoke) -> None:
    execution_id = json_out(run_order(invoke, "--json"))["id"]
    table = invoke("history", execution_id)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == f"history of {execution_id}"
    assert lines[1].split() == [
        "#", "step", "handler", "attempt", "run", "outcome", "started", "took", "error",
    ]  # fmt: skip
    assert len(lines) == 2 + 6  # title, header; validate, reserve, 3 x charge, ship
    assert "GATEWAY_UNAVAILABLE" in table.stdout
    doc = json_out(invoke("history", execution_id, "--json"))
    assert [(h["step_id"], h["attempt"], h["outcome"]) for h in doc["history"]] == [
        ("validate-order", 1, "success"),
        ("reserve-stock", 1, "success"),
        ("charge-payment", 1, "failure"),
        ("charge-payment", 2, "failure"),
        ("charge-payment", 3, "success"),
        ("ship", 1, "success"),
    ]


def test_list_filters_and_paginates(invoke: Invoke) -> None:
    completed = {json_out(run_order(invoke, "--json"))["id"] for _ in range(3)}
    waiting = approval_run(invoke)

    everything = json_out(invoke("--json", "list"))
    assert {e["id"] for e in everything["items"]} == completed | {waiting}
    assert everything["next_cursor"] is None

    only_waiting = json_out(invoke("--json", "list", "--status", "waiting"))
    assert [e["id"] for e in only_waiting["items"]] == [waiting]
    both = json_out(invoke("--json", "list", "--status", "waiting", "--status", "completed"))
    assert len(both["items"]) == 4
    by_flow = json_out(invoke("--json", "list", "--flow", "order-processing"))
    assert {e["id"] for e in by_flow["items"]} == completed

    page1 = json_out(invoke("--json", "list", "--limit", "3"))
    assert len(page1["items"]) == 3 and page1["next_cursor"]
    page2 = json_out(invoke("--json", "list", "--limit", "3", "--cursor", page1["next_cursor"]))
    seen = {e["id"] for e in page1["items"]} | {e["id"] for e in page2["items"]}
    assert seen == completed | {waiting}

    table = invoke("list", "--limit", "2")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split() == [
        "id", "flow", "status", "step", "created", "updated",
    ]  # fmt: skip
    assert "next cursor: " in table.stdout


def test_list_by_tenant_and_empty(invoke: Invoke) -> None:
    assert "(no executions)" in invoke("list").stdout
    run_order(invoke, "--tenant", "acme")
    run_order(invoke)
    assert len(json_out(invoke("--json", "list", "--tenant", "acme"))["items"]) == 1


def test_list_rejects_unknown_status(invoke: Invoke) -> None:
    result = invoke("list", "--status", "sleeping")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_events_log(invoke: Invoke) -> None:
    execution_id = approval_run(invoke)
    table = invoke("events", execution_id)
    assert table.exit_code == 0, table.output
    assert "execution.created" in table.stdout
    assert "execution.waiting" in table.stdout
    doc = json_out(invoke("--json", "events", execution_id))
    types = [e["type"] for e in doc["events"]]
    assert types[0] == "execution.created"
    assert types[-1] == "execution.waiting"
    sequences = [e["sequence"] for e in doc["events"]]
    assert sequences == sorted(sequences)


def test_flows_lists_saved_flows(invoke: Invoke) -> None:
    assert "no flows saved yet" in invoke("flows").stdout
    run_order(invoke)
    approval_run(invoke)
    doc = json_out(invoke("--json", "flows"))
    by_id = {f["id"]: f for f in doc["flows"]}
    assert set(by_id) == {"order-processing", "expense-approval"}
    assert by_id["order-processing"]["versions"] == ["1.0.0"]
    assert by_id["order-processing"]["latest"] == "1.0.0"
    table = invoke("flows")
    assert "order-processing" in table.stdout and "Expense approval" in table.stdout

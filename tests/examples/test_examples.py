"""Both examples end to end: in-process through the engine, and through the CLI on one
SQLite file shared by separate invocations (exactly the commands in examples/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flowmonkey import Engine, ExecutionStatus, HandlerRegistry, RunResult, load_flow, open_store
from flowmonkey.cli import cli
from flowmonkey.testing import FakeClock

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ORDER = EXAMPLES / "order_processing"
APPROVAL = EXAMPLES / "approval"

ORDER_CONTEXT = {
    "validated": {
        "orderId": "A-1001",
        "items": [{"sku": "BOOK-1", "qty": 2}, {"sku": "PEN-3", "qty": 1}],
        "total": 28.0,
    },
    "reservation": {
        "reservationId": "R-A-1001",
        "items": [{"sku": "BOOK-1", "qty": 2}, {"sku": "PEN-3", "qty": 1}],
    },
    "payment": {"chargeId": "CH-A-1001", "amount": 28.0, "attempts": 3},
    "shipment": {
        "trackingNumber": "TRK-A-1001",
        "carrier": "demo-post",
        "reservationId": "R-A-1001",
        "chargeId": "CH-A-1001",
    },
}


def _input(folder: Path, name: str = "input.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / name).read_text())
    return data


def _engine(folder: Path, store_url: str, clock: FakeClock) -> tuple[Engine, Any]:
    handlers = HandlerRegistry()
    handlers.register_module(str(folder / "handlers.py"))
    flow = load_flow(folder / "flow.yaml", handler_types=handlers.types())
    return Engine(open_store(store_url), handlers, clock=clock), flow


async def _run_through_retries(engine: Engine, clock: FakeClock, execution_id: str) -> RunResult:
    result = await engine.run(execution_id)
    while result.status is ExecutionStatus.WAITING and result.wake_at is not None:
        clock.advance(result.wake_at - clock.now())
        result = await engine.run(execution_id)
    return result


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/engine.db"


# -- in process ----------------------------------------------------------------------------


async def test_order_processing_in_process(store_url: str) -> None:
    clock = FakeClock()
    engine, flow = _engine(ORDER, store_url, clock)
    async with engine:
        await engine.save_flow(flow)
        created = await engine.create(flow.id, _input(ORDER))
        first = await engine.run(created.execution.id)
        # The flaky gateway failed once; the retry is a durable 50 ms wait.
        assert first.status is ExecutionStatus.WAITING
        assert first.execution.retry_attempts == {"charge-payment": 1}
        result = await _run_through_retries(engine, clock, created.execution.id)
        assert result.status is ExecutionStatus.COMPLETED
        context = dict(result.context)
        assert context.pop("order") == _input(ORDER)["order"]
        assert context == ORDER_CONTEXT
        stored = await engine.get(created.execution.id)
        assert stored is not None
        attempts = [(h.step_id, h.attempt, h.outcome) for h in stored.history]
        assert attempts[2:5] == [
            ("charge-payment", 1, "failure"),
            ("charge-payment", 2, "failure"),
            ("charge-payment", 3, "success"),
        ]


async def test_order_processing_failure_route_in_process(store_url: str) -> None:
    clock = FakeClock()
    engine, flow = _engine(ORDER, store_url, clock)
    async with engine:
        await engine.save_flow(flow)
        created = await engine.create(flow.id, _input(ORDER, "input-declined.json"))
        result = await _run_through_retries(engine, clock, created.execution.id)
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None
        assert result.error.code == "ORDER_FAILED"
        assert result.error.step_id == "notify-failure"
        assert result.error.details == {"failedStep": "charge-payment", "cause": "PAYMENT_DECLINED"}
        assert "payment" not in result.context


@pytest.mark.parametrize(("approved", "decision"), [(True, "approved"), (False, "rejected")])
async def test_approval_in_process(store_url: str, approved: bool, decision: str) -> None:
    clock = FakeClock()
    engine, flow = _engine(APPROVAL, store_url, clock)
    async with engine:
        await engine.save_flow(flow)
        created = await engine.create(flow.id, _input(APPROVAL))
        waiting = await engine.run(created.execution.id)
        assert waiting.status is ExecutionStatus.WAITING
        assert waiting.wait_reason == "waiting for manager"
        assert waiting.wake_at is None
        request = waiting.context["approvalRequest"]
        assert request["approver"] == "manager@example.com"
        # Still waiting after any amount of time: only resume/signal continues it.
        clock.advance(3600)
        assert (await engine.run(created.execution.id)).status is ExecutionStatus.WAITING
        done = await engine.resume(
            created.execution.id, {"approved": approved, "by": "boss"},
            token=request["resumeToken"],
        )  # fmt: skip
        assert done.status is ExecutionStatus.COMPLETED
        assert done.context["outcome"] == {
            "decision": decision, "expenseId": "EXP-42", "amount": 249.99, "by": "boss",
            "comment": None,
        }  # fmt: skip


# -- through the CLI (the README commands) ---------------------------------------------------


def _cli(runner: CliRunner, *args: str) -> Result:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def test_order_processing_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    store = f"sqlite:///{tmp_path}/demo.db"
    runner = CliRunner()
    result = _cli(
        runner, "run", "examples/order_processing/flow.yaml",
        "--handlers", "examples/order_processing/handlers.py",
        "--input", "@examples/order_processing/input.json", "--store", store, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "completed"
    context = doc["context"]
    context.pop("order")
    assert context == ORDER_CONTEXT

    declined = _cli(
        runner, "run", "examples/order_processing/flow.yaml",
        "--handlers", "examples/order_processing/handlers.py",
        "--input", "@examples/order_processing/input-declined.json", "--store", store,
    )  # fmt: skip
    assert declined.exit_code == 1
    assert "ORDER_FAILED at notify-failure" in declined.stdout


def test_approval_cli_run_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    store = f"sqlite:///{tmp_path}/demo.db"
    runner = CliRunner()
    waiting = _cli(
        runner, "run", "examples/approval/flow.yaml",
        "--handlers", "examples/approval/handlers.py",
        "--input", "@examples/approval/input.json", "--store", store,
    )  # fmt: skip
    assert waiting.exit_code == 3, waiting.output
    execution_id = next(
        line.split()[1] for line in waiting.stdout.splitlines() if line.startswith("execution:")
    )
    assert f"resume {execution_id}" in waiting.stdout

    resumed = _cli(
        runner, "resume", execution_id, "--data", '{"approved": true}',
        "--handlers", "examples/approval/handlers.py", "--store", store, "--json",
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    doc = json.loads(resumed.stdout)
    assert doc["status"] == "completed"
    assert doc["context"]["outcome"]["decision"] == "approved"

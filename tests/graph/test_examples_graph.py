"""The graph examples end to end: in process through the engine, and through the CLI on
one SQLite file shared by separate invocations (the commands in examples/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flowmonkey import Engine, ExecutionStatus, HandlerRegistry, load_flow
from flowmonkey.cli import cli
from flowmonkey.stores.base import Store
from flowmonkey.testing import FakeClock

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
APPROVAL = EXAMPLES / "multi_level_approval"
FULFIL = EXAMPLES / "parallel_fulfilment"


def _input(folder: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / name).read_text())
    return data


def _engine(folder: Path, store: Store, clock: FakeClock) -> tuple[Engine, Any]:
    handlers = HandlerRegistry()
    handlers.register_module(str(folder / "handlers.py"))
    flow = load_flow(folder / "flow.yaml", handler_types=handlers.types())
    engine = Engine(store, handlers, clock=clock)
    engine.flows.register(flow)
    return engine, flow


# -- in process ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "levels"),
    [("input-small.json", ["supervisor"]),
     ("input-large.json", ["supervisor", "manager", "director"])],
)  # fmt: skip
async def test_multi_level_approval_all_levels_approve(
    store: Store, clock: FakeClock, name: str, levels: list[str]
) -> None:
    engine, flow = _engine(APPROVAL, store, clock)
    async with engine:
        result = await engine.start(flow.id, _input(APPROVAL, name))
        seen_tasks = []
        while result.status is ExecutionStatus.WAITING:
            (task,) = await engine.tasks(execution_id=result.execution.id)
            seen_tasks.append(task)
            result = await engine.complete_task(
                task.id, port="approve", output={"comment": f"ok {task.role}"}, user_id=task.role
            )
        assert result.status is ExecutionStatus.COMPLETED, result.error
        assert [t.role for t in seen_tasks] == levels
        assert [t.step_id for t in seen_tasks] == [f"{r}-approval" for r in levels]
        request = _input(APPROVAL, name)["request"]
        total = len(levels)
        assert [t.title for t in seen_tasks] == [
            f"Approve {request['id']}: {request['amount']} EUR for {request['requester']} "
            f"(level {i} of {total})" for i in range(1, total + 1)
        ]  # fmt: skip
        outcome = result.context["outcome"]
        assert outcome["decision"] == "approved"
        assert outcome["approvedBy"] == levels
        done = await engine.tasks(execution_id=result.execution.id, status="completed")
        assert sorted(t.completed_by for t in done) == sorted(levels)


async def test_multi_level_approval_reject_exits_early(store: Store, clock: FakeClock) -> None:
    engine, flow = _engine(APPROVAL, store, clock)
    async with engine:
        result = await engine.start(flow.id, _input(APPROVAL, "input-large.json"))
        (first,) = await engine.tasks(execution_id=result.execution.id)
        result = await engine.complete_task(first.id, port="approve", output={})
        (second,) = await engine.tasks(execution_id=result.execution.id)
        assert second.role == "manager"
        result = await engine.complete_task(second.id, port="reject",
                                            output={"comment": "too expensive"})  # fmt: skip
        assert result.status is ExecutionStatus.COMPLETED
        outcome = result.context["outcome"]
        assert outcome["decision"] == "rejected"
        assert outcome["approvedBy"] == ["supervisor"]
        assert outcome["rejectedAt"] == "manager"
        assert outcome["comment"] == "too expensive"
        assert await engine.tasks(role="director") == []  # never reached


async def test_multi_level_approval_unanswered_task_expires_and_rejects(
    store: Store, clock: FakeClock
) -> None:
    engine, flow = _engine(APPROVAL, store, clock)
    async with engine:
        result = await engine.start(flow.id, _input(APPROVAL, "input-small.json"))
        clock.advance(4 * 3600 + 1)
        await engine.run_until_idle()
        final = await engine.get(result.execution.id)
        assert final is not None and final.status is ExecutionStatus.COMPLETED
        assert final.context["outcome"]["decision"] == "rejected"
        (task,) = await engine.tasks(execution_id=result.execution.id, status=None)
        assert task.status == "expired"


async def test_parallel_fulfilment_in_process(store: Store, clock: FakeClock) -> None:
    engine, flow = _engine(FULFIL, store, clock)
    async with engine:
        result = await engine.start(flow.id, _input(FULFIL, "input.json"))
        assert result.status is ExecutionStatus.COMPLETED, result.error
        assert result.context["shipment"] == {
            "trackingNumber": "TRK-F-2001", "reservationId": "R-F-2001",
            "chargeId": "CH-F-2001", "labelId": "L-F-2001",
        }  # fmt: skip
        forked = [e for e in await engine.events(result.execution.id)
                  if e.type == "token.forked"]  # fmt: skip
        assert forked[0].data["branches"] == ["reserve-stock", "charge-payment", "prepare-label"]

        failed = await engine.start(flow.id, _input(FULFIL, "input-out-of-stock.json"))
        assert failed.status is ExecutionStatus.FAILED
        assert failed.error is not None
        assert (failed.error.code, failed.error.step_id) == ("OUT_OF_STOCK", "reserve-stock")
        assert "shipment" not in failed.context


# -- through the CLI ---------------------------------------------------------------------------


def _cli(runner: CliRunner, *args: str) -> Result:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def test_multi_level_approval_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    store = f"sqlite:///{tmp_path}/demo.db"
    handlers = "examples/multi_level_approval/handlers.py"
    runner = CliRunner()
    started = _cli(
        runner, "--json", "--store", store, "run", "examples/multi_level_approval/flow.yaml",
        "--handlers", handlers, "--input", "@examples/multi_level_approval/input-large.json",
    )  # fmt: skip
    assert started.exit_code == 3, started.output
    execution_id = json.loads(started.stdout)["id"]
    for level, code in (("supervisor", 3), ("manager", 3), ("director", 0)):
        step = f"{level}-approval"
        answered = _cli(
            runner, "--json", "--store", store, "signal", execution_id, step, "--port",
            "approve", "--payload", json.dumps({"comment": f"ok from {level}"}),
            "--handlers", handlers,
        )  # fmt: skip
        assert answered.exit_code == code, answered.output
    doc = json.loads(answered.stdout)
    assert doc["status"] == "completed"
    assert doc["context"]["outcome"]["approvedBy"] == ["supervisor", "manager", "director"]
    # a rejected signal (not waiting there) is a usage error, exit 2
    again = _cli(runner, "--store", store, "signal", execution_id, "director-approval",
                 "--port", "approve", "--handlers", handlers)  # fmt: skip
    assert again.exit_code == 2


def test_parallel_fulfilment_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES.parent)
    store = f"sqlite:///{tmp_path}/demo.db"
    runner = CliRunner()
    ok = _cli(
        runner, "--json", "--store", store, "run", "examples/parallel_fulfilment/flow.yaml",
        "--handlers", "examples/parallel_fulfilment/handlers.py",
        "--input", "@examples/parallel_fulfilment/input.json",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["context"]["shipment"]["trackingNumber"] == "TRK-F-2001"
    bad = _cli(
        runner, "--store", store, "run", "examples/parallel_fulfilment/flow.yaml",
        "--handlers", "examples/parallel_fulfilment/handlers.py",
        "--input", "@examples/parallel_fulfilment/input-out-of-stock.json",
    )  # fmt: skip
    assert bad.exit_code == 1
    assert "OUT_OF_STOCK at reserve-stock" in bad.stdout
    graph = _cli(runner, "graph", "examples/parallel_fulfilment/flow.yaml")
    assert graph.exit_code == 0
    assert graph.stdout.startswith("flowchart TD")

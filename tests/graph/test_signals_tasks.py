"""``waitForSignal`` + ``engine.signal`` and ``userTask`` + ``complete_task``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import ExecutionStatus, FlowBuilder, FlowMonkeyError
from flowmonkey.errors import ExecutionNotFound, InvalidSignal
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import events, noop, recorder, snapshot, stored

# -- waitForSignal -------------------------------------------------------------------------


def signal_flow(output_key: str | None = "answer") -> Any:
    return (
        FlowBuilder("sig")
        .wait_for_signal(
            "wait",
            "decision",
            output_key=output_key,
            on_success="plain",
            ports={"approve": "yes", "reject": "no"},
            timeout="1h",
            on_timeout="late",
        )
        .step("plain", "mark", config={"at": "plain"}, on_success=None)
        .step("yes", "mark", config={"at": "yes"}, on_success=None)
        .step("no", "mark", config={"at": "no"}, on_success=None)
        .step("late", "mark", config={"at": "late"}, on_success=None)
        .build()
    )


def _mark() -> tuple[Any, list[Any]]:
    return recorder("mark")


@pytest.mark.parametrize(("port", "target"), [("approve", "yes"), ("reject", "no"),
                                              (None, "plain")])  # fmt: skip
async def test_signal_port_and_payload(make: MakeEngine, port: str | None, target: str) -> None:
    mark, seen = _mark()
    async with make([mark], [signal_flow()]) as engine:
        first = await engine.start("sig", {})
        assert first.status is ExecutionStatus.WAITING
        assert seen == []
        done = await engine.signal(first.execution.id, "wait", port=port, payload={"by": "x"})
        assert done.status is ExecutionStatus.COMPLETED, done.error
        assert done.context["answer"] == {"by": "x"}
        assert [c.step.id for c in seen] == [target]
        received = await events(engine, first.execution.id, "signal.received")
        assert [(e.data["step_id"], e.data["port"]) for e in received] == [("wait", port)]


async def test_signal_payload_without_output_key_goes_to_context_step_id(
    make: MakeEngine,
) -> None:
    mark, _ = _mark()
    async with make([mark], [signal_flow(output_key=None)]) as engine:
        first = await engine.start("sig", {})
        done = await engine.signal(first.execution.id, "wait", payload={"v": 1})
        assert done.context["wait"] == {"v": 1}


async def test_signal_to_wrong_step_state_or_port_raises_and_changes_nothing(
    make: MakeEngine,
) -> None:
    mark, seen = _mark()
    async with make([mark], [signal_flow()]) as engine:
        first = await engine.start("sig", {})
        before = await snapshot(engine, first.execution.id)
        with pytest.raises(InvalidSignal):
            await engine.signal(first.execution.id, "plain", payload={"x": 1})
        with pytest.raises(InvalidSignal):
            await engine.signal(first.execution.id, "nope", payload={"x": 1})
        with pytest.raises(InvalidSignal):
            await engine.signal(first.execution.id, "wait", port="maybe", payload={"x": 1})
        assert await snapshot(engine, first.execution.id) == before
        assert seen == []
        # a completed execution refuses signals too
        await engine.signal(first.execution.id, "wait", port="approve")
        done = await snapshot(engine, first.execution.id)
        with pytest.raises(InvalidSignal):
            await engine.signal(first.execution.id, "wait", port="approve")
        assert await snapshot(engine, first.execution.id) == done
        with pytest.raises(ExecutionNotFound):
            await engine.signal("no-such-id", "wait")


async def test_signal_wait_times_out_to_on_timeout(make: MakeEngine, clock: FakeClock) -> None:
    mark, seen = _mark()
    async with make([mark], [signal_flow()]) as engine:
        first = await engine.start("sig", {})
        clock.advance(timedelta(minutes=59))
        assert await engine.tick_timers() == []
        clock.advance(timedelta(minutes=2))
        assert await engine.tick_timers() == [first.execution.id]
        await engine.run_until_idle()
        final = await stored(engine, first.execution.id)
        assert final.status is ExecutionStatus.COMPLETED
        assert [c.step.id for c in seen] == ["late"]


# -- userTask ------------------------------------------------------------------------------

FORM = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
}


def task_flow() -> Any:
    return (
        FlowBuilder("review")
        .user_task("review", "Approve {{order.id}} for {{order.amount}} EUR",
                   description="by {{order.customer.name}}", assignee="ann", role="manager",
                   priority="high", due_in="2h", form=FORM, output_key="decision",
                   ports={"approve": "done", "revise": "fix"}, on_timeout="late")
        .step("fix", "mark", config={"at": "fix"}, on_success="review")
        .step("done", "mark", config={"at": "done"}, on_success=None)
        .step("late", "mark", config={"at": "late"}, on_success=None)
        .build()
    )  # fmt: skip


ORDER = {"order": {"id": "A-1", "amount": 70, "customer": {"name": "Bo"}}}


async def test_user_task_record_fields(make: MakeEngine, clock: FakeClock) -> None:
    mark, _ = _mark()
    async with make([mark], [task_flow()]) as engine:
        first = await engine.start("review", ORDER, tenant_id="t1")
        assert first.status is ExecutionStatus.WAITING
        (task,) = await engine.tasks(execution_id=first.execution.id)
        assert task.title == "Approve A-1 for 70 EUR"
        assert task.description == "by Bo"
        assert (task.assignee, task.role, task.priority) == ("ann", "manager", "high")
        assert task.status == "pending"
        assert task.tenant_id == "t1"
        assert task.form == FORM
        assert task.step_id == "review"
        assert task.due_at == clock.now() + timedelta(hours=2)
        created = await events(engine, first.execution.id, "task.created")
        assert [e.data["task_id"] for e in created] == [task.id]


async def test_tasks_query_filters(make: MakeEngine) -> None:
    other = (
        FlowBuilder("other")
        .user_task("t", "Other", assignee="bob", role="clerk", on_success=None)
        .build()
    )
    mark, _ = _mark()
    async with make([mark], [task_flow(), other]) as engine:
        a = await engine.start("review", ORDER, tenant_id="t1")
        b = await engine.start("other", {}, tenant_id="t2")

        def ids(tasks: list[Any]) -> set[str]:
            return {t.execution_id for t in tasks}

        assert ids(await engine.tasks(assignee="ann")) == {a.execution.id}
        assert ids(await engine.tasks(assignee="bob")) == {b.execution.id}
        assert ids(await engine.tasks(role="clerk")) == {b.execution.id}
        assert ids(await engine.tasks(tenant_id="t1")) == {a.execution.id}
        assert ids(await engine.tasks(tenant_id="t2", role="manager")) == set()
        assert ids(await engine.tasks()) == {a.execution.id, b.execution.id}
        assert await engine.tasks(status="completed") == []
        (bt,) = await engine.tasks(assignee="bob")
        await engine.complete_task(bt.id, user_id="bob")
        assert ids(await engine.tasks(status="completed")) == {b.execution.id}
        assert ids(await engine.tasks()) == {a.execution.id}


async def test_complete_task_rejects_output_that_breaks_the_form(make: MakeEngine) -> None:
    mark, seen = _mark()
    async with make([mark], [task_flow()]) as engine:
        first = await engine.start("review", ORDER)
        (task,) = await engine.tasks(execution_id=first.execution.id)
        before = await snapshot(engine, first.execution.id)
        for bad in ({"approved": "yes"}, {"note": "x"}, None):
            with pytest.raises(FlowMonkeyError) as info:
                await engine.complete_task(task.id, port="approve", output=bad, user_id="ann")
            assert info.value.code == "INPUT_VALIDATION_FAILED"
        # signal() to a user-task step validates against the form too
        with pytest.raises(FlowMonkeyError):
            await engine.signal(first.execution.id, "review", "approve", {"approved": 1})
        assert await snapshot(engine, first.execution.id) == before
        assert seen == []


async def test_complete_task_stores_output_follows_port_and_records_user(
    make: MakeEngine, clock: FakeClock
) -> None:
    mark, seen = _mark()
    async with make([mark], [task_flow()]) as engine:
        first = await engine.start("review", ORDER)
        (task,) = await engine.tasks(execution_id=first.execution.id)
        clock.advance(60)
        output = {"approved": True, "note": "fine"}
        done = await engine.complete_task(task.id, port="approve", output=output, user_id="ann")
        assert done.status is ExecutionStatus.COMPLETED, done.error
        assert done.context["decision"] == output
        assert [c.step.id for c in seen] == ["done"]
        (record,) = await engine.tasks(execution_id=first.execution.id, status=None)
        assert (record.status, record.completed_by, record.output) == ("completed", "ann", output)
        assert record.completed_at == clock.now()
        completed = await events(engine, first.execution.id, "task.completed")
        assert [(e.data["task_id"], e.data["completed_by"]) for e in completed] == [
            (task.id, "ann")
        ]
        with pytest.raises(InvalidSignal):  # not pending any more
            await engine.complete_task(task.id, port="approve", output=output)


async def test_signal_to_a_user_task_step_completes_the_task(make: MakeEngine) -> None:
    mark, _ = _mark()
    async with make([mark], [task_flow()]) as engine:
        first = await engine.start("review", ORDER)
        done = await engine.signal(first.execution.id, "review", "approve", {"approved": True})
        assert done.status is ExecutionStatus.COMPLETED
        (record,) = await engine.tasks(execution_id=first.execution.id, status=None)
        assert record.status == "completed"


async def test_each_visit_through_a_loop_creates_a_new_task(make: MakeEngine) -> None:
    mark, seen = _mark()
    async with make([mark], [task_flow()]) as engine:
        first = await engine.start("review", ORDER)
        (t1,) = await engine.tasks(execution_id=first.execution.id)
        again = await engine.complete_task(t1.id, port="revise", output={"approved": False})
        assert again.status is ExecutionStatus.WAITING
        (t2,) = await engine.tasks(execution_id=first.execution.id)
        assert t2.id != t1.id
        everything = await engine.tasks(execution_id=first.execution.id, status=None)
        assert sorted((t.id, t.status) for t in everything) == sorted(
            [(t1.id, "completed"), (t2.id, "pending")]
        )
        # re-running the same visit (a duplicate wake / crash) never makes a third task
        await engine.run(first.execution.id)
        assert len(await engine.tasks(execution_id=first.execution.id, status=None)) == 2
        done = await engine.complete_task(t2.id, port="approve", output={"approved": True})
        assert done.status is ExecutionStatus.COMPLETED
        assert [c.step.id for c in seen] == ["fix", "done"]


async def test_overdue_task_expires_and_routes_on_timeout(
    make: MakeEngine, clock: FakeClock
) -> None:
    mark, seen = _mark()
    async with make([mark], [task_flow()]) as engine:
        first = await engine.start("review", ORDER)
        (task,) = await engine.tasks(execution_id=first.execution.id)
        clock.advance(timedelta(hours=1, minutes=59))
        assert await engine.tick_timers() == []
        assert (await engine.tasks(execution_id=first.execution.id))[0].status == "pending"
        clock.advance(timedelta(minutes=2))
        assert await engine.tick_timers() == [first.execution.id]
        (expired,) = await engine.tasks(execution_id=first.execution.id, status=None)
        assert expired.status == "expired"
        await engine.run_until_idle()
        final = await stored(engine, first.execution.id)
        assert final.status is ExecutionStatus.COMPLETED
        assert [c.step.id for c in seen] == ["late"]
        with pytest.raises(InvalidSignal):
            await engine.complete_task(task.id, port="approve", output={"approved": True})


@pytest.mark.parametrize("how", ["cancel", "fail"])
async def test_cancel_and_fail_cancel_pending_tasks(make: MakeEngine, how: str) -> None:
    mark, _ = _mark()
    async with make([mark, noop], [task_flow()]) as engine:
        first = await engine.start("review", ORDER)
        (task,) = await engine.tasks(execution_id=first.execution.id)
        if how == "cancel":
            assert (await engine.cancel(first.execution.id, reason="x")).cancelled
        else:
            await engine.fail(first.execution.id, message="gone")
        (record,) = await engine.tasks(execution_id=first.execution.id, status=None)
        assert record.status == "cancelled"
        assert await engine.tasks(assignee="ann") == []
        cancelled = await events(engine, first.execution.id, "task.cancelled")
        assert [e.data["task_id"] for e in cancelled] == [task.id]

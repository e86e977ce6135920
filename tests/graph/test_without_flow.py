"""Issue 9, item 3: operations that run no step never need the flow definition.

Engine ``a`` has the flow and its handlers; engine ``b`` shares the store but has neither
(an API process, the CLI, another app). Every test runs on memory, SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import FlowBuilder, Result, errors, handler
from flowmonkey.model.execution import ExecutionStatus
from graph.conftest import MakeEngine, OpenStore
from graph.support import event_types, events, noop, snapshot, stored


@handler("approve")
async def approve(ctx: Any) -> Result:
    """Waits until resumed (no wake time)."""
    return Result.wait(reason="needs approval")


def waiting_flow() -> Any:
    return (
        FlowBuilder("approval")
        .step("ask", "approve", output_key="answer", on_resume="done")
        .step("done", "noop")
        .build()
    )


def signal_flow() -> Any:
    return (
        FlowBuilder("signals")
        .step(
            "gate",
            "waitForSignal",
            config={"signal": "go"},
            output_key="payload",
            ports={"yes": "accepted", "no": None},
            on_success="after",
        )
        .step("after", "noop", on_success=None)
        .step("accepted", "noop", on_success=None)
        .build()
    )


def task_flow() -> Any:
    return (
        FlowBuilder("tasks")
        .step(
            "review",
            "userTask",
            config={"title": "Review"},
            output_key="review",
            ports={"ok": "ship"},
        )
        .step("ship", "noop", on_success=None)
        .build()
    )


async def _waiting(a: Any, flow_id: str) -> str:
    result = await a.start(flow_id, {"order": 1})
    assert result.status is ExecutionStatus.WAITING
    return str(result.execution.id)


async def test_cancel_without_the_flow_ends_cancelled_with_record_event_and_hooks(
    make: MakeEngine, open_store: OpenStore
) -> None:
    async with make([approve, noop], [waiting_flow()]) as a:
        execution_id = await _waiting(a, "approval")
        async with make(store=open_store()) as b:
            cancelled: list[str] = []
            b.add_hooks("approval", on_cancel=lambda ex: cancelled.append(ex.id))
            result = await b.cancel(execution_id, reason="customer left")
            assert result.cancelled
            ex = await stored(b, execution_id)
            assert ex.status is ExecutionStatus.CANCELLED
            assert ex.error is None
            assert ex.cancellation is not None
            assert (ex.cancellation.source, ex.cancellation.reason) == ("user", "customer left")
            assert (await event_types(b, execution_id))[-1] == "execution.cancelled"
            assert "execution.failed" not in await event_types(b, execution_id)
            assert cancelled == [execution_id]


async def test_cancel_a_pending_execution_without_the_flow(
    make: MakeEngine, open_store: OpenStore
) -> None:
    async with make([approve, noop], [waiting_flow()]) as a:
        created = await a.create("approval", {})
        async with make(store=open_store()) as b:
            result = await b.cancel(created.execution.id)
            assert result.cancelled
            assert result.previous_status is ExecutionStatus.PENDING
            ex = await stored(b, created.execution.id)
            assert ex.status is ExecutionStatus.CANCELLED


async def test_fail_and_reads_without_the_flow(make: MakeEngine, open_store: OpenStore) -> None:
    async with make([approve, noop], [waiting_flow()]) as a:
        execution_id = await _waiting(a, "approval")
        async with make(store=open_store()) as b:
            assert (await stored(b, execution_id)).status is ExecutionStatus.WAITING
            page = await b.list(flow_id="approval")
            assert [e.id for e in page.items] == [execution_id]
            assert "execution.waiting" in await event_types(b, execution_id)
            result = await b.fail(execution_id, message="operator gave up", code="GAVE_UP")
            assert result.status is ExecutionStatus.FAILED
            ex = await stored(b, execution_id)
            assert ex.error is not None
            assert (ex.error.code, ex.error.message) == ("GAVE_UP", "operator gave up")
            assert [s.step_id for s in ex.history] == ["ask"]


async def test_resume_hand_off_without_the_flow_then_a_worker_process_finishes(
    make: MakeEngine, open_store: OpenStore
) -> None:
    async with make([approve, noop], [waiting_flow()]) as a:
        execution_id = await _waiting(a, "approval")
        async with make(store=open_store()) as b:
            result = await b.resume(execution_id, {"ok": True}, run_next=False)
            assert result.status is ExecutionStatus.PENDING
            ex = await stored(b, execution_id)
            assert ex.context["resumeData"] == {"ok": True}
            assert ex.context["answer"] == {"ok": True}  # the waiting step's outputKey
            assert ex.current_step_id == "done"  # its onResume, recorded at wait time
        finished = await a.run(execution_id)
        assert finished.status is ExecutionStatus.COMPLETED
        assert [s.step_id for s in finished.execution.history] == ["ask", "done"]


async def test_resume_that_must_run_a_step_without_the_flow_changes_nothing(
    make: MakeEngine, open_store: OpenStore
) -> None:
    async with make([approve, noop], [waiting_flow()]) as a:
        execution_id = await _waiting(a, "approval")
        async with make(store=open_store()) as b:
            before = await snapshot(b, execution_id)
            with pytest.raises(errors.FlowNotFound):
                await b.resume(execution_id, {"ok": True})
            with pytest.raises(errors.FlowNotFound):
                await b.signal(execution_id, "ask", payload={"ok": True})
            assert await snapshot(b, execution_id) == before
        assert (await a.resume(execution_id, {"ok": 1})).status is ExecutionStatus.COMPLETED


async def test_signal_with_a_port_without_the_flow(make: MakeEngine, open_store: OpenStore) -> None:
    async with make([noop], [signal_flow()]) as a:
        execution_id = await _waiting(a, "signals")
        async with make(store=open_store()) as b:
            with pytest.raises(errors.InvalidSignal):
                await b.signal(execution_id, "gate", port="maybe", run_next=False)
            result = await b.signal(
                execution_id, "gate", port="yes", payload={"n": 1}, run_next=False
            )
            assert result.status is ExecutionStatus.PENDING
            ex = await stored(b, execution_id)
            assert ex.current_step_id == "accepted"
            assert ex.context["payload"] == {"n": 1}
            assert "signal.received" in await event_types(b, execution_id)
        finished = await a.run(execution_id)
        assert finished.status is ExecutionStatus.COMPLETED
        assert [s.step_id for s in finished.execution.history][-1] == "accepted"


async def test_signal_without_a_port_follows_on_success_recorded_at_wait(
    make: MakeEngine, open_store: OpenStore
) -> None:
    async with make([noop], [signal_flow()]) as a:
        execution_id = await _waiting(a, "signals")
        async with make(store=open_store()) as b:
            result = await b.signal(execution_id, "gate", payload={"n": 2}, run_next=False)
            assert result.status is ExecutionStatus.PENDING
            assert (await stored(b, execution_id)).current_step_id == "after"
        assert (await a.run(execution_id)).status is ExecutionStatus.COMPLETED


async def test_complete_task_without_the_flow(make: MakeEngine, open_store: OpenStore) -> None:
    async with make([noop], [task_flow()]) as a:
        execution_id = await _waiting(a, "tasks")
        async with make(store=open_store()) as b:
            (task,) = await b.tasks(execution_id=execution_id)
            result = await b.complete_task(
                task.id, port="ok", output={"lgtm": True}, user_id="ann", run_next=False
            )
            assert result.status is ExecutionStatus.PENDING
            done = await b.store.get_task(task.id)
            assert done is not None
            assert (done.status, done.completed_by) == ("completed", "ann")
            assert (await stored(b, execution_id)).context["review"] == {"lgtm": True}
        assert (await a.run(execution_id)).status is ExecutionStatus.COMPLETED


async def test_run_without_the_flow_raises_and_leaves_it_as_it_was(
    make: MakeEngine, open_store: OpenStore
) -> None:
    async with make([approve, noop], [waiting_flow()]) as a:
        created = await a.create("approval", {})
        execution_id = created.execution.id
        async with make(store=open_store()) as b:
            before = await stored(b, execution_id)
            before_events = await events(b, execution_id)
            with pytest.raises(errors.FlowNotFound):
                await b.run(execution_id)
            with pytest.raises(errors.FlowNotFound):
                await b.step(execution_id)
            after = await stored(b, execution_id)
            assert after.status is ExecutionStatus.PENDING
            assert after.started_at is None and after.error is None
            assert after.step_count == before.step_count == 0
            assert await events(b, execution_id) == before_events
            assert await b.run_until_idle() == 0
            assert (await stored(b, execution_id)).status is ExecutionStatus.PENDING
        result = await a.run(execution_id)
        assert result.status is ExecutionStatus.WAITING


async def test_run_without_the_handler_raises_and_leaves_it_as_it_was(
    make: MakeEngine, open_store: OpenStore
) -> None:
    flow = waiting_flow()
    async with make([approve, noop], [flow]) as a:
        created = await a.create("approval", {})
        execution_id = created.execution.id
        async with make([noop], [flow], store=open_store()) as b:  # has the flow, lacks "approve"
            with pytest.raises(errors.HandlerNotFound) as info:
                await b.run(execution_id)
            assert info.value.handler_type == "approve"
            after = await stored(b, execution_id)
            assert after.status is ExecutionStatus.PENDING
            assert after.error is None and after.history == []
            assert await b.run_until_idle() == 0
        assert (await a.run(execution_id)).status is ExecutionStatus.WAITING


async def test_due_timers_apply_without_the_flow(
    make: MakeEngine, open_store: OpenStore, clock: Any
) -> None:
    flow = (
        FlowBuilder("later")
        .step("nap", "delay", config={"duration": "1h"}, output_key="nap")
        .step("wake", "noop", on_success=None)
        .build()
    )
    async with make([noop], [flow]) as a:
        execution_id = await _waiting(a, "later")
        clock.advance(3601)
        async with make(store=open_store()) as b:
            assert await b.tick_timers() == [execution_id]
            ex = await stored(b, execution_id)
            assert ex.status is ExecutionStatus.PENDING
            assert ex.current_step_id == "wake"
            assert set(ex.context["nap"]) == {"scheduledFor", "firedAt"}
        assert (await a.run(execution_id)).status is ExecutionStatus.COMPLETED


async def test_a_due_wait_that_recorded_nothing_waits_for_a_process_with_the_flow(
    make: MakeEngine, open_store: OpenStore, clock: Any
) -> None:
    """Waits committed before ``Token.wait_step`` existed carry no step snapshot: a
    process without the flow leaves them alone instead of guessing."""
    flow = (
        FlowBuilder("later")
        .step("nap", "delay", config={"duration": "1h"})
        .step("wake", "noop", on_success=None)
        .build()
    )
    async with make([noop], [flow]) as a:
        execution_id = await _waiting(a, "later")
        acquired = await a.acquire(execution_id, start=False)
        run = await a.open_run(acquired)
        assert run is not None
        run.execution.tokens[0].wait_step = None  # as an older version stored it
        await run.commit(release=True)
        clock.advance(3601)
        async with make(store=open_store()) as b:
            before = await snapshot(b, execution_id)
            assert await b.tick_timers() == []
            with pytest.raises(errors.FlowNotFound):
                await b.resume(execution_id, {}, run_next=False)
            assert await snapshot(b, execution_id) == before
        assert await a.tick_timers() == [execution_id]
        assert (await a.run(execution_id)).status is ExecutionStatus.COMPLETED


async def test_a_stored_flow_that_cannot_be_loaded_does_not_stop_the_others(
    make: MakeEngine, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with make([approve, noop], [waiting_flow()]) as a:
        broken = {"id": "broken", "version": "1.0.0", "initialStepId": "x", "steps": {}}
        await a.store.save_flow(broken, now=clock.now())
        created = await a.create("approval", {})
        assert await a.run_until_idle() == 1
        assert (await stored(a, created.execution.id)).status is ExecutionStatus.WAITING
        assert "stored flow broken@1.0.0 not loaded" in caplog.text
        with pytest.raises(errors.FlowValidationError):
            await a.load_flows_from_store()


async def test_resume_or_signal_that_would_run_a_step_without_its_handler_changes_nothing(
    make: MakeEngine, open_store: OpenStore
) -> None:
    flow = waiting_flow()
    signals = signal_flow()
    async with make([approve, noop], [flow, signals]) as a:
        resumed = await _waiting(a, "approval")
        signalled = await _waiting(a, "signals")
        async with make([approve], [flow, signals], store=open_store()) as b:  # no "noop"
            before = [await snapshot(b, resumed), await snapshot(b, signalled)]
            with pytest.raises(errors.HandlerNotFound):
                await b.resume(resumed, {"ok": True})
            with pytest.raises(errors.HandlerNotFound):
                await b.signal(signalled, "gate", port="yes", payload={"n": 1})
            with pytest.raises(errors.HandlerNotFound):
                await b.signal(signalled, "gate", payload={"n": 1})
            assert [await snapshot(b, resumed), await snapshot(b, signalled)] == before
            # Handed to a process that has the handler instead:
            assert (await b.resume(resumed, {"ok": True}, run_next=False)).status is (
                ExecutionStatus.PENDING
            )
        assert (await a.run(resumed)).status is ExecutionStatus.COMPLETED
        assert (await a.signal(signalled, "gate", port="yes")).status is ExecutionStatus.COMPLETED

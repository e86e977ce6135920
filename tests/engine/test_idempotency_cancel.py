"""Idempotent creates; cancel and fail."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import ExecutionStatus, FlowBuilder, Result, errors, handler
from flowmonkey.model.events import Event
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import event_types, noop, state, wait_forever


def flows() -> list[Any]:
    return [
        FlowBuilder("f").step("w", "wait", on_success=None).build(),
        FlowBuilder("g").step("w", "wait", on_success=None).build(),
    ]


# -- idempotency ------------------------------------------------------------------------


async def test_same_key_returns_same_execution(make: MakeEngine) -> None:
    hits: list[Event] = []
    async with make([wait_forever], flows()) as engine:
        engine.on("idempotency.hit", hits.append)
        first = await engine.create("f", {"n": 1}, idempotency_key="k1")
        second = await engine.create("f", {"n": 2}, idempotency_key="k1")
        assert first.created is True
        assert second.created is False
        assert second.execution.id == first.execution.id
        assert second.execution.context == {"n": 1}
        assert len(hits) == 1
        assert hits[0].execution_id == first.execution.id
        assert hits[0].data["idempotency_key"] == "k1"
        assert len((await engine.list()).items) == 1


async def test_idempotency_hit_is_delivered_and_appended_to_the_log(make: MakeEngine) -> None:
    # API.md: every event is persisted and delivered (issue 9, item 8).
    async with make([wait_forever], flows()) as engine:
        seen: list[Event] = []
        engine.on("idempotency.hit", seen.append)
        first = await engine.create("f", {}, idempotency_key="k1")
        await engine.create("f", {}, idempotency_key="k1")
        events = await engine.events(first.execution.id)
        assert [e.type for e in events] == ["execution.created", "idempotency.hit"]
        assert [e.sequence for e in events] == [1, 2]
        assert seen == [events[1]]


async def test_idempotency_hit_after_run(make: MakeEngine) -> None:
    async with make([wait_forever], flows()) as engine:
        first = await engine.start("f", {}, idempotency_key="k1")
        assert first.status is ExecutionStatus.WAITING
        again = await engine.start("f", {}, idempotency_key="k1")
        assert again.execution.id == first.execution.id
        assert again.status is ExecutionStatus.WAITING
        assert len(again.execution.history) == 1


async def test_key_scope_is_tenant_and_flow(make: MakeEngine) -> None:
    async with make([wait_forever], flows()) as engine:
        base = await engine.create("f", {}, idempotency_key="k", tenant_id="t1")
        other_tenant = await engine.create("f", {}, idempotency_key="k", tenant_id="t2")
        no_tenant = await engine.create("f", {}, idempotency_key="k")
        other_flow = await engine.create("g", {}, idempotency_key="k", tenant_id="t1")
        same = await engine.create("f", {}, idempotency_key="k", tenant_id="t1")
        assert [r.created for r in (base, other_tenant, no_tenant, other_flow)] == [True] * 4
        ids = {r.execution.id for r in (base, other_tenant, no_tenant, other_flow)}
        assert len(ids) == 4
        assert same.created is False and same.execution.id == base.execution.id


async def test_new_execution_after_ttl(make: MakeEngine, clock: FakeClock) -> None:
    async with make([wait_forever], flows()) as engine:
        first = await engine.create(
            "f", {}, idempotency_key="k", idempotency_ttl=timedelta(hours=1)
        )
        assert first.execution.idempotency_expires_at == clock.now() + timedelta(hours=1)
        clock.advance(timedelta(minutes=59))
        assert (await engine.create("f", {}, idempotency_key="k")).created is False
        clock.advance(timedelta(minutes=1))
        later = await engine.create("f", {}, idempotency_key="k")
        assert later.created is True
        assert later.execution.id != first.execution.id
        # The new execution now owns the key.
        again = await engine.create("f", {}, idempotency_key="k")
        assert again.created is False and again.execution.id == later.execution.id


async def test_default_ttl_is_24h(make: MakeEngine, clock: FakeClock) -> None:
    async with make([wait_forever], flows()) as engine:
        first = await engine.create("f", {}, idempotency_key="k")
        assert first.execution.idempotency_expires_at == clock.now() + timedelta(hours=24)
        clock.advance(timedelta(hours=24))
        assert (await engine.create("f", {}, idempotency_key="k")).created is True


async def test_ttl_clamped_to_seven_days(make: MakeEngine, clock: FakeClock) -> None:
    async with make([wait_forever], flows()) as engine:
        first = await engine.create(
            "f", {}, idempotency_key="k", idempotency_ttl=timedelta(days=30)
        )
        assert first.execution.idempotency_expires_at == clock.now() + timedelta(days=7)
        clock.advance(timedelta(days=7) - timedelta(seconds=1))
        assert (await engine.create("f", {}, idempotency_key="k")).created is False
        clock.advance(timedelta(seconds=1))
        assert (await engine.create("f", {}, idempotency_key="k")).created is True


async def test_concurrent_creates_with_one_key(make: MakeEngine) -> None:
    async with make([wait_forever], flows()) as engine:
        results = await asyncio.gather(
            *(engine.create("f", {"i": i}, idempotency_key="same") for i in range(50))
        )
        assert sum(r.created for r in results) == 1
        assert len({r.execution.id for r in results}) == 1
        assert len((await engine.list()).items) == 1


# -- cancel -----------------------------------------------------------------------------


async def cancelled_ok(engine: Any, execution_id: str, previous: ExecutionStatus) -> None:
    result = await engine.cancel(execution_id, reason="no longer needed")
    assert result.cancelled is True
    stored = await engine.get(execution_id)
    assert stored is not None
    assert stored.status is ExecutionStatus.CANCELLED
    assert stored.cancellation is not None
    assert stored.cancellation.source == "user"
    assert stored.cancellation.reason == "no longer needed"
    assert stored.finished_at is not None
    types = await event_types(engine, execution_id)
    assert types.count("execution.cancelled") == 1
    assert "execution.failed" not in types
    assert result.previous_status is previous


async def test_cancel_pending(make: MakeEngine) -> None:
    async with make([wait_forever], flows()) as engine:
        created = await engine.create("f", {})
        await cancelled_ok(engine, created.execution.id, ExecutionStatus.PENDING)
        # Nothing runs it afterwards.
        assert await engine.run_until_idle() == 0
        result = await engine.run(created.execution.id)
        assert result.status is ExecutionStatus.CANCELLED
        assert result.execution.history == []


async def test_cancel_waiting_in_one_commit(make: MakeEngine) -> None:
    async with make([wait_forever], flows()) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        commits: list[Any] = []
        original = engine.store.commit

        async def counting(lease: Any, commit: Any) -> None:
            commits.append(commit.execution.status)
            await original(lease, commit)

        engine.store.commit = counting  # type: ignore[method-assign]
        await cancelled_ok(engine, execution_id, ExecutionStatus.WAITING)
        assert commits == [ExecutionStatus.CANCELLED]


async def test_cancel_running_handler_from_another_task(make: MakeEngine) -> None:
    started = asyncio.Event()
    never = asyncio.Event()
    outcome: list[str] = []

    @handler("hang")
    async def hang(ctx: Any) -> Result:
        started.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return Result.success()

    flow = FlowBuilder("f").step("s", "hang").step("after", "noop").build()
    async with make([hang, noop], [flow]) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        running = asyncio.create_task(engine.run(execution_id))
        await started.wait()
        stored = await engine.get(execution_id)
        assert stored is not None and stored.status is ExecutionStatus.RUNNING
        cancel = await engine.cancel(execution_id, reason="stop")
        assert cancel.cancelled is True
        assert cancel.previous_status is ExecutionStatus.RUNNING
        result = await asyncio.wait_for(running, 5)
        assert result.status is ExecutionStatus.CANCELLED
        assert outcome == ["cancelled"]
        stored = await engine.get(execution_id)
        assert stored is not None and stored.status is ExecutionStatus.CANCELLED
        types = await event_types(engine, execution_id)
        assert types.count("execution.cancelled") == 1
        assert "step.completed" not in types and "step.failed" not in types
        assert "execution.failed" not in types


async def test_cancel_terminal_is_refused(make: MakeEngine) -> None:
    flow = FlowBuilder("h").step("s", "noop").build()
    async with make([noop], [flow]) as engine:
        execution_id = (await engine.start("h", {})).execution.id
        before = await state(engine, execution_id)
        result = await engine.cancel(execution_id)
        assert result.cancelled is False
        assert result.previous_status is ExecutionStatus.COMPLETED
        assert result.error
        assert await state(engine, execution_id) == before
        again = await engine.cancel(execution_id)
        assert again.cancelled is False


async def test_cancel_unknown(make: MakeEngine) -> None:
    async with make([wait_forever], flows()) as engine:
        with pytest.raises(errors.ExecutionNotFound):
            await engine.cancel("missing")


async def test_cancel_cascades_to_children(make: MakeEngine) -> None:
    async with make([wait_forever], flows()) as engine:
        parent = (await engine.start("f", {})).execution.id
        child = (await engine.start("f", {}, parent_execution_id=parent)).execution.id
        grandchild = (await engine.start("f", {}, parent_execution_id=child)).execution.id
        pending_child = (await engine.create("g", {}, parent_execution_id=parent)).execution.id
        result = await engine.cancel(parent, reason="stop")
        assert result.cancelled and result.children_cancelled == 2
        for execution_id in (child, grandchild, pending_child):
            stored = await engine.get(execution_id)
            assert stored is not None
            assert stored.status is ExecutionStatus.CANCELLED
            assert stored.cancellation is not None and stored.cancellation.source == "parent"


# -- fail -------------------------------------------------------------------------------


async def test_fail_waiting(make: MakeEngine) -> None:
    async with make([wait_forever], flows()) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        result = await engine.fail(execution_id, "operator gave up", code="GAVE_UP")
        assert result.status is ExecutionStatus.FAILED
        stored = await engine.get(execution_id)
        assert stored is not None and stored.error is not None
        assert (stored.error.code, stored.error.message) == ("GAVE_UP", "operator gave up")
        assert stored.error.step_id == "w"
        types = await event_types(engine, execution_id)
        assert types[-1] == "execution.failed"


async def test_fail_default_code(make: MakeEngine) -> None:
    async with make([wait_forever], flows()) as engine:
        created = await engine.create("f", {})
        result = await engine.fail(created.execution.id, "nope")
        assert result.error is not None and result.error.code == "MANUAL_FAILURE"


async def test_fail_terminal(make: MakeEngine) -> None:
    async with make([wait_forever], flows()) as engine:
        created = await engine.create("f", {})
        await engine.cancel(created.execution.id)
        before = await state(engine, created.execution.id)
        with pytest.raises(errors.ExecutionTerminal):
            await engine.fail(created.execution.id, "late")
        assert await state(engine, created.execution.id) == before
        with pytest.raises(errors.ExecutionNotFound):
            await engine.fail("missing", "x")

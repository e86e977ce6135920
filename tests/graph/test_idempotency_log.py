"""Issue 9, item 8: ``idempotency.hit`` is appended to the existing execution's persisted
log (API.md: every event is persisted and delivered), on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from flowmonkey import FlowBuilder, Result, handler
from flowmonkey.model.events import Event
from flowmonkey.model.execution import ExecutionStatus
from graph.conftest import MakeEngine
from graph.support import events, noop


async def test_hit_on_a_finished_execution_is_in_its_log(make: MakeEngine) -> None:
    flow = FlowBuilder("once").step("a", "noop").build()
    async with make([noop], [flow]) as engine:
        delivered: list[Event] = []
        engine.on("idempotency.hit", delivered.append)
        first = await engine.start("once", {}, idempotency_key="k", tenant_id="acme")
        assert first.status is ExecutionStatus.COMPLETED
        again = await engine.start("once", {}, idempotency_key="k", tenant_id="acme")
        assert again.execution.id == first.execution.id
        log = await events(engine, first.execution.id)
        assert log[-2].type == "execution.completed"
        hit = log[-1]
        assert hit.type == "idempotency.hit"
        assert hit.sequence == log[-2].sequence + 1
        assert hit.tenant_id == "acme"
        assert hit.data["idempotency_key"] == "k"
        assert hit.data["execution_id"] == first.execution.id
        assert delivered == [hit]


async def test_hit_while_the_execution_runs_is_appended_when_the_run_lets_go(
    make: MakeEngine,
) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    @handler("slow")
    async def slow(ctx: Any) -> Result:
        entered.set()
        await release.wait()
        return Result.success()

    flow = FlowBuilder("busy").step("a", "slow").step("b", "noop").build()
    async with make([slow, noop], [flow]) as engine:
        delivered: list[Event] = []
        engine.on("idempotency.hit", delivered.append)
        running = asyncio.create_task(engine.start("busy", {}, idempotency_key="k"))
        await entered.wait()
        duplicate = await engine.create("busy", {}, idempotency_key="k")
        assert not duplicate.created
        assert [e.type for e in delivered] == ["idempotency.hit"]  # delivered at once
        release.set()
        result = await running
        assert result.status is ExecutionStatus.COMPLETED
        assert await engine.settle_events(timeout=10)
        log = await events(engine, result.execution.id)
        types = [e.type for e in log]
        assert types.count("idempotency.hit") == 1
        assert types[-1] == "idempotency.hit"  # numbered after the run's own events
        assert [e.sequence for e in log] == list(range(1, len(log) + 1))

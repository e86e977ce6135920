"""Retention through the engine: ``Engine.purge`` by age and filters, the retention
pass (``EngineOptions.retention`` and each flow's own ``retention``), and its totals."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import EngineOptions, ExecutionStatus, FlowBuilder, Result, handler
from flowmonkey.model.flow import KEEP_FOREVER, Flow
from flowmonkey.stores.memory import MemoryStore
from flowmonkey.testing import FakeClock, make_engine
from flowmonkey.worker import WorkerOptions

from .conftest import MakeEngine
from .support import noop, wait_forever

DAY = timedelta(days=1)


def flow(flow_id: str, retention: timedelta | None = None) -> Flow:
    return replace(FlowBuilder(flow_id).step("a", "noop").build(), retention=retention)


def flow_of(flow_id: str, step_type: str) -> Flow:
    return FlowBuilder(flow_id).step("a", step_type).build()


def parked(flow_id: str = "parked") -> Flow:
    return FlowBuilder(flow_id).step("w", "wait").build()


async def test_purge_by_age_keeps_recent_and_live_executions(
    make: MakeEngine, clock: FakeClock
) -> None:
    async with make([noop, wait_forever], [flow("f"), parked()]) as engine:
        old = (await engine.start("f", {})).execution.id
        waiting = (await engine.start("parked", {})).execution.id
        clock.advance(10 * DAY)
        recent = (await engine.start("f", {})).execution.id
        clock.advance(DAY)
        dry = await engine.purge(older_than=5 * DAY, dry_run=True)
        assert (dry.executions, dry.rows, dry.dry_run) == (1, 0, True)
        assert await engine.get(old) is not None
        report = await engine.purge(older_than=5 * DAY)
        assert report.executions == 1 and report.rows > 1
        assert await engine.get(old) is None
        assert await engine.get(recent) is not None
        assert await engine.get(waiting) is not None
        assert (engine.purge_stats.executions, engine.purge_stats.passes) == (1, 1)


async def test_purge_filters_by_status_and_flow(make: MakeEngine, clock: FakeClock) -> None:
    async with make([noop], [flow("f"), flow("g")]) as engine:
        f1 = (await engine.start("f", {})).execution.id
        g1 = (await engine.start("g", {})).execution.id
        clock.advance(2 * DAY)
        assert (await engine.purge(older_than=DAY, status=["failed"])).executions == 0
        assert (await engine.purge(older_than=DAY, flow_id="g")).executions == 1
        assert await engine.get(g1) is None and await engine.get(f1) is not None


async def test_retention_pass_follows_options_and_flow_overrides(
    make: MakeEngine, clock: FakeClock
) -> None:
    flows = [flow("default"), flow("short", retention=DAY), flow("kept", retention=KEEP_FOREVER)]
    options = EngineOptions(retention=10 * DAY)
    async with make([noop], flows, options=options) as engine:
        ids = {f.id: (await engine.start(f.id, {})).execution.id for f in flows}
        clock.advance(2 * DAY)
        assert (await engine.purge()).executions == 1  # only "short" is past its period
        assert await engine.get(ids["short"]) is None
        clock.advance(20 * DAY)
        assert (await engine.purge()).executions == 1  # "default"; "kept" never goes
        assert await engine.get(ids["default"]) is None
        assert await engine.get(ids["kept"]) is not None
        assert engine.purge_stats.executions == 2


async def test_no_retention_configured_purges_nothing(make: MakeEngine, clock: FakeClock) -> None:
    async with make([noop], [flow("f")]) as engine:
        execution_id = (await engine.start("f", {})).execution.id
        clock.advance(1000 * DAY)
        report = await engine.purge()
        assert (report.executions, report.batches) == (0, 0)
        assert await engine.get(execution_id) is not None


async def test_bad_purge_arguments_are_value_errors(make: MakeEngine) -> None:
    async with make([noop], [flow("f")]) as engine:
        with pytest.raises(ValueError, match="positive"):
            await engine.purge(older_than=timedelta(0))
        with pytest.raises(ValueError, match="not a final status"):
            await engine.purge(older_than=DAY, status=[ExecutionStatus.WAITING])
        for share in (0, -0.5, 1.5):
            with pytest.raises(ValueError, match="share"):
                await engine.purge(older_than=DAY, share=share)
    with pytest.raises(ValueError, match="purge_share"):
        WorkerOptions(purge_share=0)


def test_flow_retention_parses_and_round_trips() -> None:
    base = FlowBuilder("f").step("a", "noop").build().to_dict()
    assert Flow.from_dict({**base, "retention": "7d"}).retention == 7 * DAY
    forever = Flow.from_dict({**base, "retention": "forever"})
    assert forever.retention == KEEP_FOREVER
    assert Flow.from_dict(forever.to_dict()) == forever
    _, issues = Flow.parse({**base, "retention": "soon"})
    assert [i.path for i in issues] == ["retention"]
    _, issues = Flow.parse({**base, "retention": 0})
    assert [i.path for i in issues] == ["retention"]


class _BesideStore(MemoryStore):
    """A store that says its purge runs beside live writes, as PostgreSQL does."""

    purge_beside_writers = True


def _gated() -> tuple[Any, asyncio.Event, asyncio.Event]:
    """A handler that holds its run in flight until ``gate`` is set."""
    entered, gate = asyncio.Event(), asyncio.Event()

    @handler("gate")
    async def gated(ctx: Any) -> Result:
        entered.set()
        await gate.wait()
        return Result.success()

    return gated, entered, gate


async def _spin(turns: int = 50) -> None:
    """Let every ready task run (no timer: the pacing waits on runs, not on time)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_purge_batches_wait_for_live_runs_on_a_store_they_block(
    make: MakeEngine, clock: FakeClock
) -> None:
    gated, entered, gate = _gated()
    async with make([noop, gated], [flow("f"), flow_of("g", "gate")]) as engine:
        old = (await engine.start("f", {})).execution.id
        clock.advance(10 * DAY)
        live = asyncio.create_task(engine.start("g", {}))
        await entered.wait()
        purging = asyncio.create_task(engine.purge(older_than=5 * DAY, pause=3600))
        await _spin()
        # SQLite and memory: a batch would hold the event loop and the write lock.
        assert not purging.done() and engine.purge_stats.batches == 0
        assert await engine.get(old) is not None
        gate.set()
        assert (await live).status is ExecutionStatus.COMPLETED
        report = await purging
        assert report.executions == 1 and await engine.get(old) is None


async def test_purge_runs_beside_live_runs_on_a_store_that_does_not_block_them(
    clock: FakeClock,
) -> None:
    gated, entered, gate = _gated()
    engine = make_engine([noop, gated], [flow("f"), flow_of("g", "gate")], store=_BesideStore(),
                         clock=clock)  # fmt: skip
    async with engine:
        old = [(await engine.start("f", {})).execution.id for _ in range(3)]
        clock.advance(10 * DAY)
        live = asyncio.create_task(engine.start("g", {}))
        await entered.wait()
        # No wait for the run in flight, however long ``pause`` allows; batches stay
        # small while the engine is busy (here 1: the store has 3 to purge).
        report = await engine.purge(older_than=5 * DAY, pause=3600, batch_size=1)
        assert report.executions == 3 and report.batches >= 3
        assert not live.done()
        assert all([await engine.get(i) is None for i in old])
        gate.set()
        assert (await live).status is ExecutionStatus.COMPLETED

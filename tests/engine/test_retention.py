"""Retention through the engine: ``Engine.purge`` by age and filters, the retention
pass (``EngineOptions.retention`` and each flow's own ``retention``), and its totals."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from flowmonkey import EngineOptions, ExecutionStatus, FlowBuilder
from flowmonkey.model.flow import KEEP_FOREVER, Flow
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import noop, wait_forever

DAY = timedelta(days=1)


def flow(flow_id: str, retention: timedelta | None = None) -> Flow:
    return replace(FlowBuilder(flow_id).step("a", "noop").build(), retention=retention)


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

"""The worker's retention pass purges what ``EngineOptions.retention`` says, reports
the totals on its health body, and leaves live executions alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from flowmonkey import Engine, EngineOptions, FlowBuilder, HandlerRegistry, Result, handler
from flowmonkey.testing import FakeClock
from flowmonkey.worker import Worker, WorkerOptions
from worker.support import Backend, eventually


@handler("noop")
async def noop(ctx: Any) -> Result:
    return Result.success()


@handler("wait")
async def wait(ctx: Any) -> Result:
    return Result.wait(reason="forever")


async def test_worker_purges_expired_executions(backend: Backend) -> None:
    clock = FakeClock()
    registry = HandlerRegistry()
    registry.register(noop)
    registry.register(wait)
    engine = Engine(
        backend.store(), registry, clock=clock, options=EngineOptions(retention=timedelta(days=1))
    )
    engine.flows.register(FlowBuilder("done").step("a", "noop").build())
    engine.flows.register(FlowBuilder("parked").step("w", "wait").build())
    async with engine:
        finished = (await engine.start("done", {})).execution.id
        parked = (await engine.start("parked", {})).execution.id
        clock.advance(timedelta(days=2))
        worker = Worker(engine, WorkerOptions(purge_interval=0.05, poll_interval=0.2))
        task = asyncio.create_task(worker.run(handle_signals=False))
        try:

            async def purged() -> bool:
                return await engine.store.get(finished) is None

            await eventually(purged, timeout=10, what="the retention pass")
            body = worker.health()[1]
            assert (body["purged_executions"], body["purged_rows"] > 0) == (1, True)
            assert await engine.store.get(parked) is not None
        finally:
            worker.stop()
            await asyncio.wait_for(task, timeout=15)

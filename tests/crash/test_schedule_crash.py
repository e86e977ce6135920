"""Exactly-once schedules under SIGKILL: two worker processes fire every-second schedules
on one store (PostgreSQL, and one SQLite file); one of them is killed repeatedly (in the
middle of whatever it was doing) and replaced. Every scheduled time from the start to the
end of the killing has exactly one execution, and no time has two.

There are more schedules than one claim takes (``CLAIM_BATCH``), so a second's times are
fired in several batch transactions, shared by both workers, and a kill lands between
batches as well as inside one."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crash.procs import WorkerProcess
from crash.worker_app import steps_flow
from flowmonkey import Engine
from flowmonkey.engine.scheduling import CLAIM_BATCH
from flowmonkey.stores.base import ExecutionQuery
from worker.support import Backend

pytestmark = [pytest.mark.slow]

SCHEDULES = CLAIM_BATCH + 10
KILLS = 3


async def _scheduled_times(engine: Engine) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    cursor = None
    while True:
        page = await engine.store.list(ExecutionQuery(limit=500, cursor=cursor))
        for e in page.items:
            seen[(e.metadata["schedule_id"], e.metadata["scheduled_for"])] += 1
        cursor = page.next_cursor
        if cursor is None:
            return seen


async def test_every_second_schedules_fire_exactly_once_through_kills(
    backend: Backend, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    args = {"concurrency": 8, "lease_for": "1s"}
    async with Engine(backend.store()) as engine:
        await engine.save_flow(steps_flow("tick", steps=1, sleep=0))
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        for n in range(SCHEDULES):
            await engine.schedules.create(
                id=f"s{n}",
                flow_id="tick",
                cron="* * * * * *",
                overlap="allow",
                catchup="all",
                start_at=start.isoformat(),
            )
        steady = WorkerProcess(backend.url, effects, tmp_path / "steady.log", **args)
        victims: list[WorkerProcess] = []
        try:
            for round_ in range(KILLS):
                victim = WorkerProcess(backend.url, effects, tmp_path / f"v{round_}.log", **args)
                victims.append(victim)
                await asyncio.sleep(2.5)
                assert victim.alive(), victim.output()
                victim.kill()
            await asyncio.sleep(1.0)
            # Every time up to now must get its execution (the last victim's leases
            # expire after 1 s; the steady worker then catches up under ``catchup=all``).
            end = datetime.now(UTC)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if _missing(await _scheduled_times(engine), start, end) == []:
                    break
                await asyncio.sleep(0.2)
            assert steady.alive(), steady.output()
        finally:
            code = steady.terminate()
        assert code == 0, steady.output()
        seen = await _scheduled_times(engine)
        assert [k for k, count in seen.items() if count > 1] == []  # zero duplicates
        missing = _missing(seen, start, end)
        assert missing == [], (start, end, missing)  # zero missed
        assert len(seen) >= SCHEDULES * 5  # the span covers the kills (>= 5 s)
        for n in range(SCHEDULES):
            runs = await engine.store.list_schedule_runs(f"s{n}", limit=10_000)
            started = [r for r in runs if r.outcome == "started"]
            assert len({r.scheduled_for for r in started}) == len(started)
            # every run's execution exists (a run recorded after the last count may not)
            assert {k for k in seen if k[0] == f"s{n}"} <= {
                (f"s{n}", r.scheduled_for.isoformat()) for r in started
            }


def _missing(seen: Counter[tuple[str, str]], start: datetime, end: datetime) -> list[str]:
    out = []
    t = start
    while t <= end:
        for n in range(SCHEDULES):
            if (f"s{n}", t.isoformat()) not in seen:
                out.append(f"s{n}@{t.isoformat()}")
        t += timedelta(seconds=1)
    return out

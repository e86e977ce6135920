"""Pipe rows are written exactly once, with real worker processes (issue 14).

- a step that fails twice then succeeds writes one row;
- a worker SIGKILLed after the handler returned and its rows were built, but before the
  commit, leaves no row; the worker that re-runs the step writes exactly one;
- 2 and 4 workers over 1,000 executions on PostgreSQL: rows == committed steps, no
  duplicates.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from crash.procs import WorkerProcess, calls_per_step, read_effects
from crash.worker_app import PIPED_SCHEMA, STALL_ENV, piped_flow
from flowmonkey import Engine
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.tables import TableRow
from worker.support import Backend, create_many, statuses, wait_all_done

pytestmark = pytest.mark.slow


async def all_rows(engine: Engine) -> list[TableRow]:
    out: list[TableRow] = []
    cursor = None
    while True:
        page = await engine.tables.rows("piped", limit=1000, cursor=cursor)
        out += page.items
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


async def test_a_step_failing_twice_then_succeeding_writes_one_row(
    backend: Backend, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    async with Engine(backend.store()) as engine:
        await engine.tables.create("piped", PIPED_SCHEMA)
        await engine.save_flow(piped_flow("flaky", steps=1, kind="crash.flaky",
                                          retry={"maxAttempts": 3}))  # fmt: skip
        ids = await create_many(engine, "flaky", 5)
        worker = WorkerProcess(backend.url, effects, tmp_path / "w.log", concurrency=4)
        try:
            await wait_all_done(engine.store, 5, timeout=60)
        finally:
            assert worker.terminate() == 0, worker.output()
        rows = await all_rows(engine)
    assert sorted(r.execution_id for r in rows) == sorted(ids)
    assert {r.data["attempt"] for r in rows} == {3}
    assert len(read_effects(effects)) == 15  # three attempts each


async def test_sigkill_between_handler_return_and_commit_writes_no_row_then_one(
    backend: Backend, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    async with Engine(backend.store()) as engine:
        await engine.tables.create("piped", PIPED_SCHEMA)
        await engine.save_flow(piped_flow("piped", steps=2))
        (eid,) = await create_many(engine, "piped", 1)
        victim = WorkerProcess(backend.url, effects, tmp_path / "victim.log",
                               lease_for="2s", env={STALL_ENV: "s2"})  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            stalled = effects.with_name(effects.name + ".stalled")
            while not stalled.exists() or not stalled.read_text():
                assert time.monotonic() < deadline and victim.alive(), victim.output()
                await asyncio.sleep(0.01)
            victim.kill()
        finally:
            if victim.alive():
                victim.kill()
        # s1 was committed with its row; s2's handler returned and its row was built,
        # but the process died before the commit: no s2 row.
        assert [r.step_id for r in await all_rows(engine)] == ["s1"]
        survivor = WorkerProcess(backend.url, effects, tmp_path / "survivor.log", lease_for="2s")
        try:
            await wait_all_done(engine.store, 1, timeout=60)
        finally:
            assert survivor.terminate() == 0, survivor.output()
        rows = await all_rows(engine)
        execution = await engine.get(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert sorted((r.execution_id, r.step_id) for r in rows) == [(eid, "s1"), (eid, "s2")]
    s2_calls = [e for e in read_effects(effects) if e.step_id == "s2"]
    assert len(s2_calls) == 2  # the step itself ran twice; its row exists once


EXECUTIONS = 1000
STEPS = 2


@pytest.mark.postgres
@pytest.mark.parametrize("workers", [2, 4])
async def test_many_workers_write_one_row_per_committed_step(
    pg_backend: Backend, tmp_path: Path, workers: int
) -> None:
    effects = tmp_path / "effects.log"
    procs: list[WorkerProcess] = []
    async with Engine(pg_backend.store()) as engine:
        await engine.tables.create("piped", PIPED_SCHEMA)
        await engine.save_flow(piped_flow("many", steps=STEPS))
        try:
            procs = [
                WorkerProcess(
                    pg_backend.url, effects, tmp_path / f"w{i}.log", concurrency=8, lease_for="30s"
                )
                for i in range(workers)
            ]
            for _ in range(0, EXECUTIONS, 50):
                await asyncio.gather(*(engine.create("many") for _ in range(50)))
            await wait_all_done(engine.store, EXECUTIONS, timeout=120)
        finally:
            codes = [p.terminate() for p in procs]
        assert codes == [0] * workers, [p.output() for p in procs]
        assert await statuses(engine.store) == {str(ExecutionStatus.COMPLETED): EXECUTIONS}
        rows = await all_rows(engine)
    keys = [(r.execution_id, r.step_id) for r in rows]
    assert len(keys) == EXECUTIONS * STEPS
    assert len(set(keys)) == len(keys)  # no duplicates
    calls = calls_per_step(read_effects(effects))
    assert set(calls) == set(keys)  # a row for exactly the steps that ran

"""PostgreSQL restarted under load: workers reconnect and finish on their own."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crash.pg_cluster import Cluster, find_bindir
from crash.procs import WorkerProcess, read_effects
from crash.worker_app import steps_flow
from flowmonkey import Engine, errors
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores import Store, open_store
from worker.support import create_many, eventually, statuses, success_counts

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EXECUTIONS = 150
STEPS = 3


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    pg = Cluster(bindir)
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


async def test_workers_survive_a_postgres_restart(cluster: Cluster, tmp_path: Path) -> None:
    url = f"{cluster.dsn}?schema=fm_restart"
    effects = tmp_path / "effects.log"
    async with Engine(_store(url)) as engine:
        await engine.save_flow(steps_flow("restart", steps=STEPS, sleep=0.02))
        ids = await create_many(engine, "restart", EXECUTIONS)
        procs = [
            WorkerProcess(url, effects, tmp_path / f"w{i}.log", concurrency=4, lease_for="2s")
            for i in range(2)
        ]
        try:
            deadline = time.monotonic() + 30
            while len(read_effects(effects)) < EXECUTIONS * STEPS // 4:
                assert time.monotonic() < deadline, [p.output() for p in procs]
                await asyncio.sleep(0.02)
            restarted_at = time.monotonic()
            cluster.restart()
            await eventually(lambda: _all_done(engine), timeout=60, what="every execution",
                             every=0.2)  # fmt: skip
            finished_in = time.monotonic() - restarted_at
            assert all(p.alive() for p in procs), [p.output() for p in procs]
        finally:
            codes = [p.terminate() for p in procs]
        assert codes == [0, 0], [p.output() for p in procs]
        successes = await success_counts(engine.store, ids)
    assert len(successes) == EXECUTIONS * STEPS and set(successes.values()) == {1}
    warnings = sum(p.output().count('"level":"warning"') for p in procs)
    print(f"all done {finished_in:.1f}s after the restart began ({warnings} warnings logged)")


def _store(url: str) -> Store:
    return open_store(url)


async def _all_done(engine: Engine) -> bool:
    try:
        counts = await statuses(engine.store)
    except errors.StoreError:
        return False  # this process's pooled connections died with the server too
    return counts.get(str(ExecutionStatus.COMPLETED), 0) == EXECUTIONS

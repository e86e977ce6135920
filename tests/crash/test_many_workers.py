"""Two and four worker processes on one PostgreSQL over 2,000 executions: every step is
committed exactly once and every handler runs exactly once (nobody crashes here)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from crash.procs import WorkerProcess, calls_per_step, read_effects
from crash.worker_app import steps_flow
from flowmonkey import Engine
from worker.support import Backend, wait_all_done

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EXECUTIONS = 2000
STEPS = 2

# A stored step record is a JSON array in StepRecord field order (stores/compact.py):
# element 0 is the step id, element 4 the outcome.
DUPLICATE_COMMITS = """
SELECT execution_id, convert_from(record, 'UTF8')::jsonb ->> 0 AS step, count(*)
FROM step_records
WHERE convert_from(record, 'UTF8')::jsonb ->> 4 = 'success'
GROUP BY 1, 2
"""


@pytest.mark.parametrize("workers", [2, 4])
async def test_no_duplicate_step_commits(pg_backend: Backend, tmp_path: Path,
                                         workers: int) -> None:  # fmt: skip
    effects = tmp_path / "effects.log"
    procs: list[WorkerProcess] = []
    async with Engine(pg_backend.store()) as engine:
        await engine.save_flow(steps_flow("many", steps=STEPS, sleep=0))
        try:
            procs = [
                WorkerProcess(
                    pg_backend.url, effects, tmp_path / f"w{i}.log", concurrency=8, lease_for="30s"
                )
                for i in range(workers)
            ]
            began = time.monotonic()
            # Created while the workers run, as in production: NOTIFY wakes them.
            for start in range(0, EXECUTIONS, 50):
                await asyncio.gather(*(engine.create("many") for _ in range(50)))
            await wait_all_done(engine.store, EXECUTIONS, timeout=90)
            elapsed = time.monotonic() - began
            assert all(p.alive() for p in procs), [p.output() for p in procs]
        finally:
            codes = [p.terminate() for p in procs]
        assert codes == [0] * workers, [p.output() for p in procs]

    rows = _query(pg_backend.url, DUPLICATE_COMMITS)
    assert len(rows) == EXECUTIONS * STEPS
    duplicates = [r for r in rows if r[2] != 1]
    assert duplicates == []
    calls = calls_per_step(read_effects(effects))
    assert len(calls) == EXECUTIONS * STEPS and set(calls.values()) == {1}
    # Work was spread: every worker ran some of it.
    pids = {e.pid for e in read_effects(effects)}
    assert pids == {p.pid for p in procs}
    print(f"{workers} workers: {EXECUTIONS} executions x {STEPS} steps in {elapsed:.1f}s")


def _query(url: str, query: str) -> list[tuple[object, ...]]:
    import psycopg

    from flowmonkey.stores.postgres_conn import parse_url

    dsn, schema = parse_url(url)
    with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
        return list(conn.execute(query).fetchall())

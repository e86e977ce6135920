"""SIGKILL a worker mid-step while another keeps running (real subprocesses).

Checks the durability promises: every execution completes; no committed step runs again
(one ``success`` record per step); only the steps in flight at the kill run twice, on a
new ``run_number``, and they are picked up within the lease time (+ 1 s).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from crash.procs import WorkerProcess, by_step, read_effects
from crash.worker_app import steps_flow
from flowmonkey import Engine
from flowmonkey.model.execution import ExecutionStatus
from worker.support import Backend, create_many, statuses, success_counts, wait_all_done

pytestmark = pytest.mark.slow

LEASE = 2.0
CONCURRENCY = 4
EXECUTIONS = 30
STEPS = 3


async def test_sigkill_mid_step_loses_nothing_and_reruns_only_in_flight_steps(
    backend: Backend, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.log"
    async with Engine(backend.store()) as engine:
        await engine.save_flow(steps_flow("crash", steps=STEPS, sleep=0.15))
        ids = await create_many(engine, "crash", EXECUTIONS)
        victim = WorkerProcess(backend.url, effects, tmp_path / "a.log",
                               concurrency=CONCURRENCY, lease_for=f"{LEASE}s")  # fmt: skip
        survivor = WorkerProcess(backend.url, effects, tmp_path / "b.log",
                                 concurrency=CONCURRENCY, lease_for=f"{LEASE}s")  # fmt: skip
        try:
            # Kill the victim while it is inside handlers: it has started a few steps and
            # its latest one began moments ago (steps take 150 ms).
            deadline = time.monotonic() + 30
            while True:
                mine = [e for e in read_effects(effects) if e.pid == victim.pid]
                if len(mine) >= 2 * CONCURRENCY and time.time() - mine[-1].at < 0.05:
                    break
                assert time.monotonic() < deadline, victim.output()
                assert victim.alive(), victim.output()
                await asyncio.sleep(0.005)
            killed_at = victim.kill()
            await wait_all_done(engine.store, EXECUTIONS, timeout=60)
            assert survivor.alive(), survivor.output()
        finally:
            if victim.alive():
                victim.kill()
            code = survivor.terminate()
        assert code == 0, survivor.output()

        counts = await statuses(engine.store)
        assert counts == {str(ExecutionStatus.COMPLETED): EXECUTIONS}
        # No committed step ran again: exactly one success record per step.
        successes = await success_counts(engine.store, ids)
        assert len(successes) == EXECUTIONS * STEPS
        assert set(successes.values()) == {1}

    calls = by_step(read_effects(effects))
    assert len(calls) == EXECUTIONS * STEPS
    rerun = {key: c for key, c in calls.items() if len(c) > 1}
    # Re-executions: only steps the victim was inside when it died, once each.
    assert 1 <= len(rerun) <= CONCURRENCY, rerun
    for first, *again in rerun.values():
        assert first.pid == victim.pid and first.at <= killed_at
        assert len(again) == 1 and again[0].pid == survivor.pid
        assert again[0].run_number == first.run_number + 1
    recovery = max(c[1].at for c in rerun.values()) - killed_at
    print(f"{backend.name}: {len(rerun)} step(s) in flight at the kill; "
          f"recovered {recovery:.2f}s after it (lease {LEASE}s)")  # fmt: skip
    assert recovery <= LEASE + 1.0

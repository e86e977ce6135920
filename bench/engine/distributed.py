# ruff: noqa: ASYNC220, ASYNC230, SIM115  (harness: spawning/stopping worker processes)
"""Benchmarks with a worker: signal latency across processes, sub-flow fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.engine import fixtures as fx
from bench.engine.core import BenchResult, Config, benchmark, row
from flowmonkey import ExecutionStatus

WAITING = ExecutionStatus.WAITING


@contextlib.asynccontextmanager
async def worker_process(
    store_url: str, work: Path, *, concurrency: int = 16, poll: float = 0.05
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Run ``bench.engine.worker`` in a subprocess until the block exits (SIGTERM)."""
    ready = work / f"worker-{time.monotonic_ns()}.ready"
    log = open(work / "worker.log", "ab")
    env = {**os.environ, "PYTHONPATH": str(fx.ROOT)}
    cmd = [sys.executable, "-m", "bench.engine.worker", "--store", store_url,
           "--concurrency", str(concurrency), "--poll", str(poll),
           "--ready", str(ready)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=fx.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"bench worker exited {proc.returncode}; see {log.name}")
            if time.monotonic() > end:
                raise TimeoutError("bench worker did not start in 60 s")
            await asyncio.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


async def _wait_all(engine: Any, ids: list[str], done: Any, timeout: float = 120) -> list[Any]:
    """Poll until every execution satisfies ``done(execution)``; returns them in order."""
    out: dict[str, Any] = {}
    end = time.monotonic() + timeout
    while len(out) < len(ids):
        for eid in ids:
            if eid not in out:
                ex = await engine.get(eid)
                if ex is not None and done(ex):
                    out[eid] = ex
        if len(out) < len(ids):
            if time.monotonic() > end:
                raise TimeoutError(f"{len(ids) - len(out)} executions did not get there")
            await asyncio.sleep(0.005)
    return [out[eid] for eid in ids]


def _finished(ex: Any) -> bool:
    if ex.status.is_terminal:
        if ex.status is not ExecutionStatus.COMPLETED:
            raise RuntimeError(f"{ex.id} ended {ex.status}: {ex.error}")
        return True
    return False


async def _signal_round(
    client: Any, n_single: int, n_burst: int, gap: float
) -> tuple[list[float], ...]:
    """Create executions (the worker drives them to their signal wait), then signal them:
    ``n_single`` one at a time (waiting for each to finish), then ``n_burst`` back to
    back. Latency = the ``finish`` handler's start in the worker minus the moment just
    before ``signal`` was called here (``time.monotonic``, system-wide).

    Single signals wait a random 0..``gap`` s first: sent right after the previous one
    finished they would always land at the same phase of a polling worker's cycle."""
    ids = [(await client.create("signal", {})).execution.id for _ in range(n_single + n_burst)]
    await _wait_all(client, ids, lambda ex: ex.status is WAITING)
    gc.collect()
    single = []
    for eid in ids[:n_single]:
        await asyncio.sleep(random.uniform(0, gap))
        t0 = time.monotonic()
        await client.signal(eid, "wait", run_next=False)
        (ex,) = await _wait_all(client, [eid], _finished)
        single.append((ex.context["t_finish"] - t0) * 1e3)
    sent = {}
    for eid in ids[n_single:]:
        sent[eid] = time.monotonic()
        await client.signal(eid, "wait", run_next=False)
    burst_ids = ids[n_single:]
    done = await _wait_all(client, burst_ids, _finished)
    burst = [(ex.context["t_finish"] - sent[ex.id]) * 1e3 for ex in done]
    return single, burst


@benchmark("signal-latency", "signal -> next step starting on another worker process")
async def signal_latency(cfg: Config, res: BenchResult) -> None:
    n_single, n_burst = cfg.size(100, 50), 100
    sqlite_single, poll = cfg.size(40, 20), 0.05
    res.params = {"single": n_single, "burst": n_burst, "sqlite_single": sqlite_single,
                  "worker_concurrency": 16, "worker_poll_s": poll}  # fmt: skip
    work = fx.fresh_dir("signal")
    reason = fx.pg_available()
    if reason:
        res.notes.append(f"postgres skipped: {reason}")
    else:
        schema = fx.new_schema()
        try:
            # the client creates the schema first, so the worker never races the migration
            client = fx.build_engine(fx.pg_store(schema))
            async with client, worker_process(fx.pg_url(schema), work, poll=poll):
                await _signal_round(client, 5, 5, 0.01)  # warm-up
                p50, p99, b50, b99 = [], [], [], []
                for _ in range(cfg.runs):
                    single, burst = await _signal_round(client, n_single, n_burst, 0.01)
                    p50.append(fx.percentile(single, 50))
                    p99.append(fx.percentile(single, 99))
                    b50.append(fx.percentile(burst, 50))
                    b99.append(fx.percentile(burst, 99))
        finally:
            fx.drop_schema(schema)
        res.rows += [
            row("postgres, one at a time: p50", p50, "ms", target="< 5 ms",
                check=lambda v: v < 5, on="value"),
            row("postgres, one at a time: p99", p99, "ms", target="< 20 ms",
                check=lambda v: v < 20, on="value"),
            row(f"postgres, {n_burst} back to back: p50", b50, "ms", target="< 15 ms",
                check=lambda v: v < 15, on="value"),
            row(f"postgres, {n_burst} back to back: p99 (info)", b99, "ms"),
        ]  # fmt: skip
    db = work / "signal.db"
    client = fx.build_engine(fx.sqlite_store(db))
    async with client, worker_process(f"sqlite:///{db}", work, poll=poll):
        await _signal_round(client, 3, 0, poll)
        s50, s99 = [], []
        for _ in range(cfg.runs):
            single, _burst = await _signal_round(client, sqlite_single, 0, poll)
            s50.append(fx.percentile(single, 50))
            s99.append(fx.percentile(single, 99))
    res.rows += [
        row("sqlite across processes: p50", s50, "ms", target="< 50 ms",
            check=lambda v: v < 50, on="value"),
        row("sqlite across processes: p99 (info)", s99, "ms"),
    ]  # fmt: skip
    res.notes.append(
        "client = Engine subclass whose drive() hands the execution back as pending "
        "(engine.signal otherwise runs the next step inline in the caller); worker = "
        f"`python -m bench.engine.worker` (Worker, concurrency 16, poll {poll}s). Postgres "
        "wakes the worker by LISTEN/NOTIFY; SQLite has no cross-process wake, so it polls; "
        "single signals are sent after a random pause (0-10 ms Postgres, 0-poll SQLite)"
    )


# -- 8. subflow-fanout ---------------------------------------------------------------------


async def _fanout_once(n: int, concurrency: int) -> tuple[float, float, float]:
    """One parent with a ``forEach`` of ``n`` children, run by an in-process Worker.

    Returns (parent resumed - last child completed, parent completed - last child
    completed, parent created -> completed), all in ms, from event timestamps.
    """
    from flowmonkey.worker import Worker, WorkerOptions

    schema = fx.new_schema()
    try:
        engine = fx.build_engine(fx.pg_store(schema))
        async with engine:
            worker = Worker(engine, WorkerOptions(concurrency=concurrency, poll_interval=0.05,
                                                  shutdown_grace=5.0))  # fmt: skip
            task = asyncio.create_task(worker.run(handle_signals=False))
            try:
                gc.collect()
                parent = (await engine.create("fan", {"items": list(range(n))})).execution.id
                await _wait_all(engine, [parent], _finished, timeout=300)
            finally:
                worker.stop()
                await task
            children = (await engine.list(parent_execution_id=parent, limit=n + 1)).items
            if len(children) != n:
                raise RuntimeError(f"expected {n} children, found {len(children)}")
            last_child: datetime | None = None
            for child in children:
                for ev in await engine.events(child.id):
                    if ev.type == "execution.completed" and (
                        last_child is None or ev.timestamp > last_child
                    ):
                        last_child = ev.timestamp
            events = await engine.events(parent)
    finally:
        fx.drop_schema(schema)
    assert last_child is not None
    resumed = [e.timestamp for e in events if e.type == "execution.resumed"]
    created = next(e.timestamp for e in events if e.type == "execution.created")
    completed = next(e.timestamp for e in events if e.type == "execution.completed")
    if not resumed:
        raise RuntimeError("the parent has no execution.resumed event")
    resume = max(resumed)

    def ms(a: datetime, b: datetime) -> float:
        return (a - b).total_seconds() * 1e3

    return ms(resume, last_child), ms(completed, last_child), ms(completed, created)


@benchmark("subflow-fanout", "forEach of 100 sub-flow children on PostgreSQL, one worker")
async def subflow_fanout(cfg: Config, res: BenchResult) -> None:
    reason = fx.pg_available()
    if reason:
        res.skipped = f"PostgreSQL unavailable ({reason})"
        return
    n, conc = 100, 16
    res.params = {"children": n, "forEach_concurrency": n, "worker_concurrency": conc}
    resumed, completed, total = [], [], []
    for _ in range(cfg.runs):
        a, b, c = await _fanout_once(n, conc)
        resumed.append(a)
        completed.append(b)
        total.append(c)
    res.rows += [
        row("parent resumed after last child completed", resumed, "ms", target="< 100 ms",
            check=lambda v: v < 100, on="value"),
        row("parent completed after last child (info)", completed, "ms"),
        row("whole fan-out, parent created -> completed (info)", total, "ms"),
    ]  # fmt: skip
    res.notes.append(
        "event timestamps: max(child execution.completed) vs the parent's "
        "last execution.resumed (in-process Worker, LISTEN/NOTIFY)"
    )

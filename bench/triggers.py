"""Trigger benchmarks: ``python -m bench.triggers [--quick] [--only schedules,hooks]``.

- ``schedules``: N every-second schedules for D seconds fired by two ``flowmonkey worker``
  processes, on PostgreSQL and on one SQLite file. Per execution: fire lag = its
  ``created_at`` minus its scheduled time (p50, p99); per scheduled time: duplicates (more
  than one execution) and missed (none) over the whole span.
- ``hooks``: signed webhooks to ``POST /hooks/{id}`` of a uvicorn server on SQLite (no
  auth, no inline runs: the cost is verify, validate, map, create), from one client
  process with keep-alive: sequential latency (p50) and throughput with 32 requests in
  flight, and the server's CPU per hook (``bench/hooks.py``).

Issue 13's targets: lag p50 < 50 ms, p99 < 250 ms, zero duplicates and misses; >= 1,000
hooks/s, p50 < 3 ms. Results print as JSON lines and go to bench/results/triggers-<ts>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP = str(Path(__file__).with_name("trigger_app.py"))
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "flowmonkey.cli.worker",
        "--store",
        url,
        "--handlers",
        APP,
        "--concurrency",
        "64",
        "--poll-interval",
        "0.5",
        "--log-level",
        "WARNING",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def bench_schedules(backend: str, count: int, seconds: int, work: Path) -> dict[str, Any]:
    from bench.trigger_app import tick_flow
    from flowmonkey.engine.engine import Engine
    from flowmonkey.stores import open_store
    from flowmonkey.stores.base import ExecutionQuery

    schema = f"bench_triggers_{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{work / 'sched.db'}" if backend == "sqlite" else f"{PG_ADMIN}?schema={schema}"
    engine = Engine(open_store(url))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with engine:
            await engine.save_flow(tick_flow())
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
            end = start + timedelta(seconds=seconds - 1)
            for n in range(count):
                await engine.schedules.create(
                    id=f"s{n:03d}",
                    flow_id="tick",
                    cron="* * * * * *",
                    overlap="allow",
                    catchup="all",
                    start_at=start.isoformat(),
                    end_at=end.isoformat(),
                )
            procs = [_worker(url, work / f"{backend}-w{i}.log") for i in range(2)]
            await asyncio.sleep((end - datetime.now(UTC)).total_seconds() + 3)
            seen: Counter[tuple[str, str]] = Counter()
            lags: list[float] = []
            cursor = None
            while True:
                page = await engine.store.list(ExecutionQuery(limit=500, cursor=cursor))
                for e in page.items:
                    key = (e.metadata["schedule_id"], e.metadata["scheduled_for"])
                    seen[key] += 1
                    if seen[key] == 1:
                        scheduled = datetime.fromisoformat(key[1])
                        lags.append((e.created_at - scheduled).total_seconds() * 1000)
                cursor = page.next_cursor
                if cursor is None:
                    break
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if backend == "postgres":
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as c:
                c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    expected = count * seconds
    return {
        "bench": "schedules",
        "backend": backend,
        "schedules": count,
        "seconds": seconds,
        "workers": 2,
        "expected_fires": expected,
        "executions": sum(seen.values()),
        "duplicates": sum(c - 1 for c in seen.values() if c > 1),
        "missed": expected - len(seen),
        "lag_p50_ms": round(pct(lags, 0.5), 1),
        "lag_p99_ms": round(pct(lags, 0.99), 1),
        "lag_max_ms": round(max(lags, default=0), 1),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def bench_hooks(requests: int, work: Path, synchronous: str = "FULL") -> dict[str, Any]:
    """Signed webhooks (see ``bench/hooks.py``: raw keep-alive clients, server CPU/hook)."""
    from bench.hooks import bench_hooks as run

    return await run(requests, work, synchronous)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.triggers")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="schedules,hooks")
    parser.add_argument("--backends", default="postgres,sqlite")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = ROOT / "bench" / ".work" / f"triggers-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    results = []
    if "schedules" in only:
        seconds = 20 if args.quick else 60
        for backend in args.backends.split(","):
            results.append(asyncio.run(bench_schedules(backend, 100, seconds, work)))
            print(json.dumps(results[-1]), flush=True)
    if "hooks" in only:
        for mode in ("FULL", "NORMAL"):
            results.append(asyncio.run(bench_hooks(2000 if args.quick else 10000, work, mode)))
            print(json.dumps(results[-1]), flush=True)
    out = ROOT / "bench" / "results" / f"triggers-{stamp}.json"
    load = os.getloadavg()
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "quick": args.quick,
                "cpus": os.cpu_count(),
                "load_after": load,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

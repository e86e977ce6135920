"""Physical-limit baselines (runs in the project venv).

``sqlite-commit``: one-row ``UPDATE`` per transaction on a SQLite file in WAL mode with
``synchronous=FULL`` (every commit fsyncs the WAL). ``pg-commit``: the same on the
local Postgres (``synchronous_commit=on``, autocommit, one round trip per commit).
``python-await``: awaiting a no-op coroutine N times -- the cost of the empty loop.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from pathlib import Path

from bench.runners.common import emit
from bench.workloads import BASELINE_PARAMS, summary_ms


def sqlite_commit(path: Path, n: int) -> dict:
    c = sqlite3.connect(str(path), isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER)")
    c.execute("INSERT OR REPLACE INTO t VALUES (1, 0)")
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        s = time.perf_counter()
        c.execute("BEGIN IMMEDIATE")
        c.execute("UPDATE t SET v = v + 1 WHERE id = 1")
        c.execute("COMMIT")
        lat.append(time.perf_counter() - s)
    wall = time.perf_counter() - t0
    c.close()
    return {"workload": "baseline", "variant": "sqlite-commit", "backend": "sqlite",
            "commits": n, "commits_per_s": n / wall, "commit": summary_ms(lat),
            "settings": "WAL, synchronous=FULL"}


def pg_commit(dsn: str, n: int) -> dict:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, v bigint)")
        c.execute("INSERT INTO t VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET v = 0")
        sc = c.execute("SHOW synchronous_commit").fetchone()[0]
        fs = c.execute("SHOW fsync").fetchone()[0]
        lat = []
        t0 = time.perf_counter()
        for _ in range(n):
            s = time.perf_counter()
            c.execute("UPDATE t SET v = v + 1 WHERE id = 1")
            lat.append(time.perf_counter() - s)
        wall = time.perf_counter() - t0
    return {"workload": "baseline", "variant": "pg-commit", "backend": "postgres",
            "commits": n, "commits_per_s": n / wall, "commit": summary_ms(lat),
            "settings": f"synchronous_commit={sc}, fsync={fs}"}


async def _noop() -> None:
    return None


async def python_await(n: int) -> dict:
    t0 = time.perf_counter()
    for _ in range(n):
        await _noop()
    wall = time.perf_counter() - t0
    return {"workload": "baseline", "variant": "python-await", "backend": "-",
            "calls": n, "ns_per_call": 1e9 * wall / n, "calls_per_s": n / wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="quick", choices=["quick", "full"])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--pg-dsn", default=None)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--run", type=int, default=0)
    a = ap.parse_args()
    p = BASELINE_PARAMS[a.mode]
    wd = Path(a.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    base = {"system": "baseline", "version": "", "mode": a.mode, "run": a.run}
    if "sqlite" in a.backends:
        emit({**base, **sqlite_commit(wd / "baseline.sqlite", p["commits"])})
    if "postgres" in a.backends and a.pg_dsn:
        emit({**base, **pg_commit(a.pg_dsn, p["commits"])})
    emit({**base, **asyncio.run(python_await(p["loop"]))})


if __name__ == "__main__":
    main()

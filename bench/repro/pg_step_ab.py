"""PostgreSQL W1 (one flow at a time) measured exactly as the peers harness runs it,
with the raw one-row ``UPDATE`` + ``COMMIT`` alternated in the same process.

    .venv/bin/python bench/repro/pg_step_ab.py [rounds] [cpu|profile]

Each round runs, in turn: 200 raw commits, 60 flows of K=1, 20 flows of K=10 and 2 flows
of K=100, through the peers runner's own engine (``bench.runners.flowmonkey_runner``:
same flows, same ~100 B no-op handler, ``engine.start`` with a ``Worker`` task running
beside it). It prints the median over rounds of each round's p50: per flow at K=1, per
step at K=10/100, and the raw commit, plus the process CPU per step. To compare two
checkouts, alternate them on a loaded machine and compare the medians:

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old/src:. .venv/bin/python bench/repro/pg_step_ab.py 5
    PYTHONPATH=src:.          .venv/bin/python bench/repro/pg_step_ab.py 5

``profile`` runs the flows (not the raw commits) under cProfile and prints the top functions.
Uses a throwaway schema in ``$FM_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
dropped at the end.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import time
import uuid

import psycopg
from bench.runners.flowmonkey_runner import build_engine, make_worker

DSN = os.environ.get("FM_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PLAN = ((1, 60), (10, 20), (100, 2))
RAW = 200


def _raw_commits(conn: psycopg.Connection, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("UPDATE fm_raw_commit SET v = %s WHERE id = 1", [i])
        conn.commit()
        out.append(time.perf_counter() - t0)
    return out


async def main(rounds: int, mode: str) -> None:
    schema = f"fm_ab_{uuid.uuid4().hex[:10]}"
    raw = psycopg.connect(DSN)
    raw.execute(f"CREATE SCHEMA {schema}")
    raw.execute(f"SET search_path TO {schema}")
    raw.execute("CREATE TABLE fm_raw_commit (id int PRIMARY KEY, v bigint)")
    raw.execute("INSERT INTO fm_raw_commit VALUES (1, 0)")
    raw.commit()
    engine = build_engine(f"{DSN}?schema={schema}")
    try:
        await engine.__aenter__()
        worker = make_worker(engine, 16)
        wtask = asyncio.create_task(worker.run(handle_signals=False))
        for _ in range(20):  # warm-up, as the harness does
            await engine.start("chain-10", {"steps": 10, "run": "warm"})
        res: dict[str, list[float]] = {"raw": [], "cpu_us": []}
        for k, _ in PLAN:
            res[f"K={k}"] = []
        prof = cProfile.Profile() if mode == "profile" else None
        for _ in range(rounds):
            res["raw"].append(statistics.median(_raw_commits(raw, RAW)))
            cpu0, steps = time.process_time(), 0
            if prof:
                prof.enable()
            for k, flows in PLAN:
                lat = []
                for _ in range(flows):
                    t0 = time.perf_counter()
                    rr = await engine.start(f"chain-{k}", {"steps": k, "run": "ab"})
                    lat.append(time.perf_counter() - t0)
                    assert str(rr.status) == "completed", rr
                steps += k * flows
                res[f"K={k}"].append(statistics.median(lat) / (1 if k == 1 else k))
            if prof:
                prof.disable()
            res["cpu_us"].append((time.process_time() - cpu0) / steps * 1e6)
        worker.stop()
        await wtask
    finally:
        await engine.__aexit__(None, None, None)
        raw.rollback()
        raw.execute(f"DROP SCHEMA {schema} CASCADE")
        raw.commit()
        raw.close()
    for name, values in res.items():
        unit = "us" if name == "cpu_us" else "ms"
        scale = 1 if name == "cpu_us" else 1000
        shown = " ".join(f"{v * scale:.3f}" for v in values)
        print(f"{name:8} median {statistics.median(values) * scale:8.3f} {unit}   [{shown}]")
    print(f"load average {os.getloadavg()[0]:.2f}")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 5,
            sys.argv[2] if len(sys.argv) > 2 else "cpu",
        )
    )

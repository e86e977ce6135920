"""Where one PostgreSQL K=1 flow spends its wall time, phase by phase.

    PYTHONPATH=src:. .venv/bin/python bench/repro/pg_create_phases.py [flows]

Runs ``flows`` (default 1000) ``chain-1`` flows one at a time through the peers runner's
engine (``bench.runners.flowmonkey_runner``: same flow, same no-op handler, a ``Worker``
task beside it) after a warm-up, timing each ``postgres_fast.run_prepared`` call, and
prints the p50 of: the Python before the create is sent, the create's round trip, the
time between the two statements (run setup, handler, building the final commit), the
final commit's round trip, and what follows it. Compare checkouts by alternating
``PYTHONPATH=<checkout>/src:.`` runs. Uses a throwaway schema in ``$FM_PG_DSN``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from typing import Any

import psycopg
from bench.runners.flowmonkey_runner import build_engine, make_worker

from flowmonkey.stores import postgres_fast

DSN = os.environ.get("FM_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
_SPANS: list[tuple[float, float]] = []
_run_prepared = postgres_fast.run_prepared


async def _timed(conn: Any, query: str, params: Any) -> Any:
    t0 = time.perf_counter()
    try:
        return await _run_prepared(conn, query, params)
    finally:
        _SPANS.append((t0, time.perf_counter()))


async def main(flows: int) -> None:
    postgres_fast.run_prepared = _timed  # type: ignore[assignment]
    schema = f"fm_phases_{uuid.uuid4().hex[:10]}"
    raw = psycopg.connect(DSN, autocommit=True)
    raw.execute(f"CREATE SCHEMA {schema}")
    engine = build_engine(f"{DSN}?schema={schema}")
    phases: dict[str, list[float]] = {
        k: [] for k in ("total", "before", "create", "between", "commit", "after")
    }
    try:
        await engine.__aenter__()
        worker = make_worker(engine, 16)
        wtask = asyncio.create_task(worker.run(handle_signals=False))
        for _ in range(50):
            await engine.start("chain-1", {"steps": 1, "run": "warm"})
        for _ in range(flows):
            _SPANS.clear()
            t0 = time.perf_counter()
            await engine.start("chain-1", {"steps": 1, "run": "phases"})
            t1 = time.perf_counter()
            if len(_SPANS) != 2:  # the worker's poll ran a statement in between
                continue
            (c0, c1), (s0, s1) = _SPANS
            for name, value in zip(
                phases, (t1 - t0, c0 - t0, c1 - c0, s0 - c1, s1 - s0, t1 - s1), strict=True
            ):
                phases[name].append(value)
        worker.stop()
        await wtask
    finally:
        await engine.__aexit__(None, None, None)
        raw.execute(f"DROP SCHEMA {schema} CASCADE")
        raw.close()
    shown = " | ".join(f"{k} {statistics.median(v) * 1000:.3f}" for k, v in phases.items())
    print(f"K=1 p50 ms over {len(phases['total'])} flows: {shown}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))

"""Flows, handlers, stores and raw-commit baselines shared by the engine benchmarks.

Everything here is importable from a worker subprocess (``bench.engine.worker``), so both
sides of a cross-process benchmark register exactly the same flows and handlers.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flowmonkey import (
    ContextLimits,
    Engine,
    EngineOptions,
    Flow,
    FlowRegistry,
    HandlerRegistry,
    MemoryStore,
    Result,
    SqliteStore,
    handler,
    load_flow,
)

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "bench" / ".work"
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")

KB = "x" * 1000  # ~1 KB JSON string (1002 bytes encoded)
"""The value each ``context-growth`` step writes under its own new key."""

# -- handlers ------------------------------------------------------------------------------


@handler("noop")
async def noop(ctx: Any) -> Result:
    """The no-op async step every throughput benchmark runs."""
    return Result.success()


STAMPS: list[float] = []
"""``perf_counter`` at each ``stamp`` handler call (in this process)."""


@handler("stamp")
async def stamp(ctx: Any) -> Result:
    """Record when this step's handler started, write ~1 KB at the step's ``outputKey``."""
    STAMPS.append(time.perf_counter())
    return Result.success(KB)


@handler("mono")
async def mono(ctx: Any) -> Result:
    """Return ``time.monotonic()`` (system-wide on Linux: comparable across processes)."""
    return Result.success(time.monotonic())


HANDLERS = (noop, stamp, mono)

# -- flows ---------------------------------------------------------------------------------


def chain(flow_id: str, k: int, typ: str = "noop", *, output_keys: bool = False) -> Flow:
    """K steps in a row (step ``s{i}``, ``outputKey`` ``k{i}`` when ``output_keys``)."""
    steps: dict[str, Any] = {}
    for i in range(k):
        step: dict[str, Any] = {
            "id": f"s{i}",
            "type": typ,
            "transitions": {"onSuccess": f"s{i + 1}" if i + 1 < k else None},
        }
        if output_keys:
            step["outputKey"] = f"k{i}"
        steps[f"s{i}"] = step
    return load_flow({"id": flow_id, "version": "1.0.0", "initialStepId": "s0", "steps": steps})


def fanout(flow_id: str, n: int) -> Flow:
    """``parallel`` fork of ``n`` one-step no-op branches into a ``join``."""
    branches = [f"b{i}" for i in range(n)]
    steps: dict[str, Any] = {
        "fork": {"id": "fork", "type": "parallel", "config": {"branches": branches},
                 "transitions": {"onSuccess": None}},
        "join": {"id": "join", "type": "join", "config": {"mode": "all"},
                 "transitions": {"onSuccess": None}},
    }  # fmt: skip
    for b in branches:
        steps[b] = {"id": b, "type": "noop", "transitions": {"onSuccess": "join"}}
    return load_flow({"id": flow_id, "version": "1.0.0", "initialStepId": "fork", "steps": steps})


def signal_flow() -> Flow:
    """``wait`` (waitForSignal ``go``) -> ``finish`` (returns ``time.monotonic()``)."""
    return load_flow({"id": "signal", "version": "1.0.0", "initialStepId": "wait", "steps": {
        "wait": {"id": "wait", "type": "waitForSignal", "config": {"signal": "go"},
                 "transitions": {"onResume": "finish", "onSuccess": "finish"}},
        "finish": {"id": "finish", "type": "mono", "outputKey": "t_finish",
                   "transitions": {"onSuccess": None}},
    }})  # fmt: skip


def foreach_flow(n: int) -> Flow:
    """``forEach`` over ``items`` (``n`` of them, all at once) of the one-step ``child``."""
    return load_flow({"id": "fan", "version": "1.0.0", "initialStepId": "each", "steps": {
        "each": {"id": "each", "type": "forEach", "outputKey": "results",
                 "config": {"items": "items", "flow": "child", "concurrency": n,
                            "output": "done"},
                 "transitions": {"onSuccess": None}},
    }})  # fmt: skip


def child_flow() -> Flow:
    return load_flow({"id": "child", "version": "1.0.0", "initialStepId": "s0", "steps": {
        "s0": {"id": "s0", "type": "noop", "outputKey": "done",
               "transitions": {"onSuccess": None}},
    }})  # fmt: skip


def all_flows() -> list[Flow]:
    return [
        chain("chain-3", 3),
        chain("chain-10", 10),
        chain("chain-100", 100),
        chain("grow-1000", 1000, "stamp", output_keys=True),
        fanout("fanout-100", 100),
        signal_flow(),
        foreach_flow(100),
        child_flow(),
    ]


BENCH_OPTIONS = EngineOptions(
    # context-growth writes 1,000 top-level keys in 1,000 steps: lift those two limits.
    max_steps=5000,
    context_limits=ContextLimits(max_keys=5000),
)
"""Defaults except ``max_steps`` and ``max_keys`` (only ``context-growth`` needs them)."""


def build_engine(store: Any, *, options: EngineOptions | None = None, cls: type = Engine) -> Any:
    """An ``Engine`` with the bench handlers and flows over ``store`` (``SystemClock``)."""
    handlers = HandlerRegistry()
    for h in HANDLERS:
        handlers.register(h)
    flows = FlowRegistry()
    for f in all_flows():
        flows.register(f)
    return cls(store, handlers, flows, options=options or BENCH_OPTIONS)


# -- stores --------------------------------------------------------------------------------


def memory_store() -> MemoryStore:
    return MemoryStore()


def sqlite_store(path: Path) -> SqliteStore:
    return SqliteStore(path, synchronous="FULL")


def new_schema() -> str:
    return f"bench_engine_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def pg_available() -> str | None:
    """None when the Postgres server and driver are usable, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3) as c:
            c.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip()[:120]}"
    return None


def pg_store(schema: str, **options: Any) -> Any:
    from flowmonkey.stores.postgres import PostgresStore

    return PostgresStore(PG_ADMIN, schema=schema, **options)


def pg_url(schema: str) -> str:
    return f"{PG_ADMIN}?schema={schema}"


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_settings() -> dict[str, str]:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        out = {}
        for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method"):
            row = c.execute(f"SHOW {name}").fetchone()
            out[name] = str(row[0]) if row else "?"
        return out


# -- raw commit baselines -------------------------------------------------------------------


def sqlite_raw_commits(path: Path, n: int) -> float:
    """Commits/s of a one-row UPDATE per transaction (WAL, synchronous=FULL, BEGIN
    IMMEDIATE like the store's writers)."""
    c = sqlite3.connect(str(path), isolation_level=None)
    try:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        c.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER)")
        c.execute("INSERT OR REPLACE INTO t VALUES (1, 0)")
        t0 = time.perf_counter()
        for _ in range(n):
            c.execute("BEGIN IMMEDIATE")
            c.execute("UPDATE t SET v = v + 1 WHERE id = 1")
            c.execute("COMMIT")
        return n / (time.perf_counter() - t0)
    finally:
        c.close()


def pg_raw_commits(schema: str, n: int) -> float:
    """Commits/s of ``UPDATE t SET v = v + 1 WHERE id = 1`` + ``COMMIT`` from one client
    (psycopg, autocommit off), in the bench's throwaway schema on the same server."""
    import psycopg

    with psycopg.connect(PG_ADMIN) as c:
        c.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        c.execute(f'CREATE TABLE IF NOT EXISTS "{schema}".raw_t (id int PRIMARY KEY, v bigint)')
        c.execute(f'INSERT INTO "{schema}".raw_t VALUES (1, 0) ON CONFLICT (id) DO NOTHING')
        c.commit()
        sql = f'UPDATE "{schema}".raw_t SET v = v + 1 WHERE id = 1'
        t0 = time.perf_counter()
        for _ in range(n):
            c.execute(sql)
            c.commit()
        return n / (time.perf_counter() - t0)


# -- stats ---------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, round(q / 100 * len(xs) + 0.5) - 1))
    return xs[k]


def median(values: Iterable[float]) -> float:
    xs = list(values)
    return statistics.median(xs) if xs else float("nan")


def fresh_dir(tag: str) -> Path:
    d = WORK / f"engine-{tag}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    d.mkdir(parents=True, exist_ok=True)
    return d

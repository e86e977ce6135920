"""Data tables: what a pipe adds to a step, and how fast a big table exports."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from datetime import UTC, datetime
from typing import Any

from bench.engine import fixtures as fx
from bench.engine.core import BenchResult, Config, benchmark, row
from flowmonkey import ExecutionStatus, FlowBuilder
from flowmonkey.model.tables import TableRow

COMPLETED = ExecutionStatus.COMPLETED
CHUNKS = 10
"""Plain and piped slices alternate this many times per run (drift hits both alike)."""
STEPS = 5

ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "execution_id": {"type": "string"},
        "step": {"type": "string"},
        "attempt": {"type": "integer"},
    },
    "required": ["execution_id", "step"],
}
PIPE_MAP = "{execution_id: execution.id, step: execution.step_id, attempt: execution.attempt}"


def _flows() -> list[Any]:
    plain, piped = FlowBuilder("plain-5"), FlowBuilder("piped-5")
    for i in range(STEPS):
        plain.step(f"s{i}", "noop")
        piped.step(f"s{i}", "noop").pipe("steps", PIPE_MAP)
    return [plain.build(), piped.build()]


async def _run(engine: Any, flow_id: str, n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n):
        result = await engine.start(flow_id, {})
    wall = time.perf_counter() - t0
    if result.status is not COMPLETED:
        raise RuntimeError(f"{flow_id} ended {result.status}: {result.execution.error}")
    return wall


async def _pipe_cost(store: Any, n: int, indexed: list[str]) -> tuple[float, float]:
    """``(plain steps/s, piped steps/s)`` on one engine, slices alternating."""
    engine = fx.build_engine(store)
    async with engine:
        await engine.tables.create("steps", ROW_SCHEMA, indexed)
        for flow in _flows():
            engine.flows.register(flow)
        await _run(engine, "plain-5", 10)
        await _run(engine, "piped-5", 10)
        plain = piped = 0.0
        for _ in range(CHUNKS):
            plain += await _run(engine, "plain-5", n // CHUNKS)
            piped += await _run(engine, "piped-5", n // CHUNKS)
        rows = await engine.tables.rows("steps", limit=1)
        assert rows.items, "the pipes wrote no row"
    return n * STEPS / plain, n * STEPS / piped


@benchmark("pipe-cost", "a step with one pipe vs the same step without (SQLite FULL, PostgreSQL)")
async def pipe_cost(cfg: Config, res: BenchResult) -> None:
    n = cfg.size(300, 100)
    res.params = {"executions": n, "steps": STEPS, "slices": CHUNKS, "pipe": PIPE_MAP,
                  "table": "3 properties, 0 or 1 indexed"}  # fmt: skip
    work = fx.fresh_dir("pipes")
    backends: list[tuple[str, Any]] = [("SQLite FULL", None)]
    if fx.pg_available() is None:
        backends.append(("PostgreSQL", None))
    else:
        res.notes.append("PostgreSQL unavailable: only SQLite measured")
    for label, _ in backends:
        for indexed in ([], ["step"]):
            kind = f"{label}, table with {len(indexed)} indexed field(s)"
            plain_rates, piped_rates, ratios = [], [], []
            for run in range(cfg.runs):
                if label == "PostgreSQL":
                    schema = fx.new_schema()
                    try:
                        plain, piped = await _pipe_cost(fx.pg_store(schema), n, indexed)
                    finally:
                        fx.drop_schema(schema)
                else:
                    path = work / f"pipes-{len(indexed)}-{run}.db"
                    plain, piped = await _pipe_cost(fx.sqlite_store(path), n, indexed)
                plain_rates.append(plain)
                piped_rates.append(piped)
                ratios.append(plain / piped)  # time per piped step / time per plain step
            res.rows.append(row(f"{kind}: steps/s with one pipe", piped_rates, "steps/s",
                                baseline="same steps, no pipe", baseline_samples=plain_rates,
                                baseline_unit="steps/s"))  # fmt: skip
            res.rows.append(row(f"{kind}: cost of a piped step (time ratio)", ratios, "x",
                                target="<= 1.15x", check=lambda v: v <= 1.15,
                                on="value"))  # fmt: skip
    res.notes.append(
        "one engine per run; plain-5 and piped-5 (5 no-op steps; each piped step maps "
        "3 fields with JMESPath, validates the row against the table's JSON Schema and "
        "inserts it in the step's commit) alternate in slices; ratio = plain steps/s / "
        "piped steps/s, per run"
    )


# -- export ----------------------------------------------------------------------------------

EXPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "total": {"type": "number"},
        "customer": {"type": "string"},
        "paid": {"type": "boolean"},
    },
}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _fill(engine: Any, n: int) -> float:
    await engine.tables.create("orders", EXPORT_SCHEMA, ["total"])
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    for start in range(0, n, 10_000):
        await engine.store.insert_rows(
            [
                TableRow(
                    table="orders",
                    tenant_id="acme",
                    created_at=now,
                    data={
                        "order_id": f"o-{i}",
                        "total": i % 997 + 0.5,
                        "customer": f"c-{i % 500}",
                        "paid": i % 2 == 0,
                    },
                )
                for i in range(start, min(start + 10_000, n))
            ]
        )
    return n / (time.perf_counter() - t0)


async def _export(engine: Any, fmt: str) -> tuple[float, float, float, int]:
    """``(rows/s, rows per CPU-second of this process, RSS growth MiB, bytes)`` of one
    full export, read as a client would."""
    gc.collect()
    base = peak = _rss_mib()
    lines = size = 0
    t0, c0 = time.perf_counter(), time.process_time()
    async for chunk in await engine.tables.export("orders", fmt):
        lines += chunk.count(b"\n")
        size += len(chunk)
        peak = max(peak, _rss_mib())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = lines - (fmt == "csv")
    return rows / wall, rows / cpu, peak - base, size


@benchmark("table-export", "streamed export of a 1,000,000-row table (JSON Lines, CSV)")
async def table_export(cfg: Config, res: BenchResult) -> None:
    n = cfg.size(1_000_000, 200_000)
    runs = min(cfg.runs, 3)
    res.params = {"rows": n, "runs": runs, "batch": 5000,
                  "row": "4 fields, ~90 bytes of JSON"}  # fmt: skip
    work = fx.fresh_dir("export")
    backends = ["SQLite"] + (["PostgreSQL"] if fx.pg_available() is None else [])
    for label in backends:
        schema = fx.new_schema() if label == "PostgreSQL" else None
        store = fx.pg_store(schema) if schema else fx.sqlite_store(work / "export.db")
        try:
            async with fx.build_engine(store) as engine:
                fill_rate = await _fill(engine, n)
                res.notes.append(f"{label}: filled {n:,} rows at {fill_rate:,.0f} rows/s "
                                 "(insert_rows, 10,000 per call)")  # fmt: skip
                for fmt in ("jsonl", "csv"):
                    rates, per_cpu, growth = [], [], []
                    for _ in range(runs):
                        rate, cpu_rate, grown, size = await _export(engine, fmt)
                        rates.append(rate)
                        per_cpu.append(cpu_rate)
                        growth.append(grown)
                    res.rows.append(row(f"{label} {fmt}: rows/s", rates, "rows/s",
                                        target=">= 100,000",
                                        check=lambda v: v >= 100_000, on="value"))  # fmt: skip
                    res.rows.append(row(f"{label} {fmt}: rows per CPU-second (info)", per_cpu,
                                        "rows/s"))  # fmt: skip
                    res.rows.append(row(f"{label} {fmt}: RSS growth during export", growth,
                                        "MiB", target="flat (< 64 MiB)",
                                        check=lambda v: v < 64, on="value"))  # fmt: skip
                    res.notes.append(f"{label} {fmt}: {size / 2**20:,.0f} MiB exported")
        finally:
            if schema:
                fx.drop_schema(schema)
        await asyncio.sleep(0)
    res.notes.append(
        "engine.tables.export consumed chunk by chunk in the same process; RSS sampled "
        "after each chunk (/proc/self/statm), growth = peak - RSS before the export; rows "
        "per CPU-second counts this process only (PostgreSQL formats rows in the server), "
        "a figure the other tenants of the machine disturb less than wall time"
    )

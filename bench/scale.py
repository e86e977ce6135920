"""Scale benchmark: ``python -m bench scale [--size N] [--backends sqlite,postgres]``.

Measures what a store costs with N executions parked on a 30-day timer, against the same
store empty, in one run (issue 16):

- live step: a 10-step flow run to completion one at a time beside the parked ones
  (per step; median and p99 over ``--live`` executions);
- scheduler pass with nothing due (``engine.tick_timers()``), an empty claim
  (``store.claim``), and one list page (50) for each filter the engine/CLI/API offer;
- purge: ``--finished`` old completed executions purged through ``engine.purge`` alone,
  then while a live stepper runs beside it: executions/s, and the live step p50/p99
  with the purge and without it, sampled interleaved (the purge is let run in one-second
  windows that alternate with one-second windows without it, so both see the same
  machine state); each ``--purge-runs`` times, the medians reported (a p99 over a few
  seconds of live steps varies by tens of percent from one run to the next);
- bytes per execution: store size on disk (SQLite pages in use; PostgreSQL relation
  sizes after VACUUM FULL) divided by the executions stored.

Parked executions are generated in bulk through the store's own code, ``create`` (or
PostgreSQL's ``create_bulk``, the same statement 500 to a transaction): the exact
header, context and events of a real parked execution, made by the engine first, with
new ids and spread creation times, not hand-written SQL. Not part of ``make test``.
Results go to ``bench/results/scale-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flowmonkey import (
    Engine,
    EngineOptions,
    ExecutionStatus,
    Flow,
    FlowRegistry,
    HandlerRegistry,
    Result,
    SqliteStore,
    handler,
)
from flowmonkey.engine import retention
from flowmonkey.engine.creation import time_ordered_id
from flowmonkey.model.events import Event
from flowmonkey.stores.base import ExecutionQuery, Store
from flowmonkey.testing import FakeClock

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
RESULTS = ROOT / "bench" / "results"
PG = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
TENANTS = 20
FLOWS = 10


@handler("noop")
async def noop(ctx: Any) -> Result:
    """The live flow's step."""
    return Result.success()


def _flows() -> list[Flow]:
    parked = [
        Flow.from_dict({
            "id": f"parked-{n}", "version": "1.0.0", "initialStepId": "w",
            "steps": {"w": {"id": "w", "type": "delay", "config": {"duration": "30d"}}},
        })
        for n in range(FLOWS)
    ]  # fmt: skip
    steps = {
        f"s{i}": {"id": f"s{i}", "type": "noop",
                  "transitions": {"onSuccess": f"s{i + 1}" if i < 9 else None}}
        for i in range(10)
    }  # fmt: skip
    live = Flow.from_dict({"id": "live", "version": "1.0.0", "initialStepId": "s0", "steps": steps})
    return [*parked, live]


def _engine(store: Store, clock: Any = None) -> Engine:
    registry = HandlerRegistry()
    registry.register(noop)
    # A 30-day wait needs no 24-hour execution timeout.
    return Engine(store, registry, FlowRegistry(_flows()), clock=clock,
                  options=EngineOptions(execution_timeout=None, purge_batch_size=100))  # fmt: skip


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50": round(statistics.median(ordered) * 1000, 3), "p99": round(p99 * 1000, 3)}


async def _timed(fn: Callable[[], Awaitable[Any]], runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - began)
    return _ms(times)


async def _live_steps(engine: Engine, count: int) -> list[float]:
    """Seconds per step of ``count`` 10-step executions run one at a time."""
    out = []
    for _ in range(count):
        began = time.perf_counter()
        result = await engine.start("live", {})
        assert result.status is ExecutionStatus.COMPLETED, result.status
        out.append((time.perf_counter() - began) / 10)
    return out


# -- generating parked and finished executions ------------------------------------------


async def _template(engine: Engine, flow_id: str) -> tuple[Any, list[Event]]:
    result = await engine.start(flow_id, {"order": {"id": "A-1", "total": 42.5}})
    stored = await engine.store.get(result.execution.id)
    assert stored is not None
    return stored, await engine.store.events(stored.id)


async def generate(engine: Engine, count: int, *, finished: bool, age: timedelta) -> None:
    """``count`` executions through ``store.create``: copies of a real parked (or, with
    ``finished``, completed) execution, with new ids, tenants, flows and creation times
    spread over ``age``."""
    flow = "live" if finished else "parked-0"
    template, events = await _template(engine, flow)
    now = engine.clock.now()
    step = age / max(count, 1)
    # Finished ones all ended more than 30 days ago (the purge's cutoff); parked ones
    # were created over the last ``age``.
    oldest = now - age - (timedelta(days=31) if finished else timedelta(0))
    concurrency = 8
    numbers = iter(range(count))  # ascending: ids are made in time order

    bulk = getattr(engine.store, "create_bulk", None)  # PostgreSQL: one transaction a batch
    batch: list[tuple[Any, list[Event]]] = []

    async def worker() -> None:
        for n in numbers:  # shared by the workers (one event loop: no race)
            created = oldest + step * n
            ident = time_ordered_id(created)  # as the engine makes them
            execution = template.clone()
            execution.id = ident
            execution.created_at = created
            execution.updated_at = created + timedelta(seconds=1)
            if not finished:
                execution.flow_id = f"parked-{n % FLOWS}"
            execution.tenant_id = f"t{n % TENANTS}"
            execution.correlation_id = f"c{n // 10}"
            moved = [
                Event(
                    e.type,
                    ident,
                    created,
                    {**e.data, "execution_id": ident},
                    e.sequence,
                    execution.tenant_id,
                )  # fmt: skip
                for e in events
            ]
            if bulk is None:
                await engine.store.create(execution, moved)
                continue
            batch.append((execution, moved))
            if len(batch) >= 500:
                mine = batch[:]
                batch.clear()
                await bulk(mine)
        if bulk is not None and batch:
            mine = batch[:]
            batch.clear()
            await bulk(mine)

    await asyncio.gather(*(worker() for _ in range(concurrency if bulk is None else 3)))


# -- sizes ------------------------------------------------------------------------------


def sqlite_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)
    finally:
        conn.close()


async def pg_bytes(schema: str, *, vacuum: bool) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(PG, autocommit=True) as conn:
        if vacuum:
            await conn.execute(f'SET search_path TO "{schema}"')
            await conn.execute("VACUUM FULL ANALYZE")
        row = await (await conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'", [schema],
        )).fetchone()  # fmt: skip
        return int(row[0]) if row and row[0] else 0


# -- one measurement ----------------------------------------------------------------------


LISTS: dict[str, ExecutionQuery] = {
    "all": ExecutionQuery(limit=50),
    "status": ExecutionQuery(status=[ExecutionStatus.WAITING], limit=50),
    "flow": ExecutionQuery(flow_id="parked-3", limit=50),
    "tenant": ExecutionQuery(tenant_id="t7", limit=50),
    "tenant+flow": ExecutionQuery(tenant_id="t3", flow_id="parked-3", limit=50),
    "flow+status": ExecutionQuery(flow_id="parked-3", status=[ExecutionStatus.WAITING], limit=50),
    "correlation": ExecutionQuery(correlation_id="c17", limit=50),
    "completed": ExecutionQuery(status=[ExecutionStatus.COMPLETED], limit=50),
}


async def _samples(fn: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - began)
    return times


async def measure(
    engines: dict[str, Engine], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Live step, scheduler, claim and list pages on each store, in alternating rounds
    (the machine is shared: both see the same load), medians and p99 over all rounds."""
    rounds = 5
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in engines}
    for engine in engines.values():
        await _live_steps(engine, 5)  # warm-up
    for round_ in range(rounds):
        order = list(engines.items())
        if round_ % 2:
            order.reverse()
        for name, engine in order:
            store = engine.store
            got = samples[name]
            got.setdefault("live_step", []).extend(
                await _live_steps(engine, max(args.live // rounds, 1))
            )
            runs = max(args.runs // rounds, 1)
            tick = await _samples(lambda e=engine: e.tick_timers(limit=100), runs)  # type: ignore[misc]
            got.setdefault("tick", []).extend(tick)
            claim = await _samples(
                lambda e=engine: e.store.claim(  # type: ignore[misc]
                    owner="bench", now=e.clock.now(), lease_for=timedelta(seconds=30), limit=10
                ),
                runs,
            )
            got.setdefault("claim", []).extend(claim)
            for label, query in LISTS.items():
                page = await _samples(lambda q=query, st=store: st.list(q), runs)  # type: ignore[misc]
                got.setdefault(f"list {label}", []).extend(page)
            first = await store.list(ExecutionQuery(limit=50))
            if first.next_cursor:
                deep = ExecutionQuery(limit=50, cursor=first.next_cursor)
                page = await _samples(lambda q=deep, st=store: st.list(q), runs)  # type: ignore[misc]
                got.setdefault("list all, page 2", []).extend(page)
    return {name: {k: _ms(v) for k, v in got.items()} for name, got in samples.items()}


async def _stepper(
    engine: Engine, stop: asyncio.Event, during: list[tuple[float, float]]
) -> None:
    """Run the 10-step live flow one execution after another until ``stop``; each
    sample is one execution's (start, end), ``perf_counter`` seconds."""
    while not stop.is_set():
        began = time.perf_counter()
        # SQLite runs inline on the loop: yield, and count the wait for the purge batch
        # that may run then, as a worker's step would.
        await asyncio.sleep(0)
        result = await engine.start("live", {})
        assert result.status is ExecutionStatus.COMPLETED, result.status
        during.append((began, time.perf_counter()))


class _Windows:
    """Turns the purge on and off in alternating windows of ``WINDOW`` seconds while the
    stepper runs, so that the live steps with and without a purge are sampled
    interleaved, under the same machine state (the disk's write-back, other load) rather
    than one before the other. A batch waits at the gate while the purge is off; the
    first ``SPILL`` seconds of each off window are not sampled (the checkpoints of the
    purge's last pages)."""

    WINDOW = 1.0
    SPILL = 0.2

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.on: list[tuple[float, float]] = []
        self.off: list[tuple[float, float]] = []

    async def run(self, done: asyncio.Event) -> None:
        """Alternate until ``done`` (the purge ended), then one more window without it."""
        while True:
            began = time.perf_counter()
            self.gate.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.WINDOW)
            self.on.append((began, time.perf_counter()))
            self.gate.clear()
            began = time.perf_counter()
            await asyncio.sleep(self.WINDOW)
            self.off.append((began + self.SPILL, time.perf_counter()))
            if done.is_set():
                return

    @staticmethod
    def inside(
        samples: list[tuple[float, float]], windows: list[tuple[float, float]]
    ) -> list[float]:
        """Seconds per step of the executions that ran wholly inside one of ``windows``."""
        out, i = [], 0
        for began, ended in samples:
            while i < len(windows) and windows[i][1] < began:
                i += 1
            if i < len(windows) and windows[i][0] <= began and ended <= windows[i][1]:
                out.append((ended - began) / 10)
        return out


async def run_finished(engine: Engine, count: int, where: Any) -> None:
    """``count`` real 10-step executions run to completion by the engine (each with its
    header, context, events and step rows as a worker leaves them: 21 rows of events
    and step records on SQLite), on a clock 60 days in the past, so the purge
    measures what it costs on executions the engine made. On SQLite, through a second
    store on the same file without an fsync per commit (running them is not what is
    measured)."""
    began = engine.clock.now() - timedelta(days=60)
    clock = FakeClock(began)
    store = SqliteStore(where, synchronous="OFF") if isinstance(where, Path) else engine.store
    runner = _engine(store, clock)  # PostgreSQL: the same open store, another clock
    # A millisecond of the fake clock per execution: lanes interleave on PostgreSQL, and
    # a step's lease (30 s) must not expire because another lane moved the clock.
    tick = timedelta(milliseconds=1)
    numbers = iter(range(count))

    async def lane() -> None:
        for _ in numbers:  # shared by the lanes (one event loop: no race)
            clock.advance(tick)
            result = await runner.start("live", {"order": {"id": "A-1", "total": 42.5}})
            assert result.status is ExecutionStatus.COMPLETED, result.status

    if isinstance(where, Path):
        async with runner:
            await asyncio.gather(*(lane() for _ in range(4)))
    else:
        await asyncio.gather(*(lane() for _ in range(8)))


async def _purge(engine: Engine, args: argparse.Namespace) -> Any:
    return await engine.purge(
        older_than=timedelta(days=30), pause=args.purge_pause, batch_size=args.purge_batch,
        share=args.purge_share,
    )  # fmt: skip


async def _purge_once(
    engine: Engine, args: argparse.Namespace, where: Any, *, live: bool
) -> dict[str, Any]:
    """Purge ``--finished`` freshly run old executions once, alone or beside a live
    stepper; beside it, the purge runs in alternating windows (``_Windows``) and the
    live steps of the windows with a purge are compared with those of the windows
    without one."""
    await run_finished(engine, args.finished, where)
    if not isinstance(where, Path):
        # Executions that ended 30 days ago were last written many checkpoints ago, so
        # a purge's first change to each of their pages writes the whole page to the
        # WAL (full_page_writes). Without this the purge would delete pages written
        # since the last checkpoint, and write a fraction of the WAL it does in use.
        import psycopg

        async with await psycopg.AsyncConnection.connect(PG, autocommit=True) as conn:
            await conn.execute("CHECKPOINT")
    # The executions just run were written without an fsync (SQLite) or are still in
    # the page cache: flush them now, not while the live steps are timed.
    await asyncio.to_thread(os.sync)
    if not live:
        began = time.perf_counter()
        report = await _purge(engine, args)
        return _purge_summary(report, time.perf_counter() - began)
    windows = _Windows()
    limits = {name: getattr(retention, name) for name in ("_paced_limit", "_beside_limit")}

    def gated(limit: Callable[..., Awaitable[int]]) -> Callable[..., Awaitable[int]]:
        async def wait_then(*a: Any) -> int:
            # Before the pass sizes and times its next batch: the time at the gate is
            # not counted as the batch's cost.
            await windows.gate.wait()
            return await limit(*a)

        return wait_then

    done, stop = asyncio.Event(), asyncio.Event()
    samples: list[tuple[float, float]] = []
    for name, limit in limits.items():
        setattr(retention, name, gated(limit))
    stepper = asyncio.create_task(_stepper(engine, stop, samples))
    alternating = asyncio.create_task(windows.run(done))
    try:
        report = await _purge(engine, args)
    finally:
        done.set()
        await alternating
        stop.set()
        await stepper
        for name, limit in limits.items():
            setattr(retention, name, limit)
    out = _purge_summary(report, sum(ended - began for began, ended in windows.on))
    during, without = windows.inside(samples, windows.on), windows.inside(samples, windows.off)
    out["live_step_ms"], out["live_executions"] = _ms(during), len(during)
    out["baseline_ms"], out["baseline_executions"] = _ms(without), len(without)
    out["p50_change"] = round(out["live_step_ms"]["p50"] / out["baseline_ms"]["p50"] - 1, 3)
    out["p99_change"] = round(out["live_step_ms"]["p99"] / out["baseline_ms"]["p99"] - 1, 3)
    return out


def _purge_summary(report: Any, took: float) -> dict[str, Any]:
    """One purge's counts and rate (``took``: seconds it was let run)."""
    return {
        "purged": report.executions, "rows": report.rows, "batches": report.batches,
        "seconds": round(took, 3),
        "executions_per_s": round(report.executions / took) if took else None,
    }  # fmt: skip


def _median(runs: list[dict[str, Any]], key: str) -> Any:
    return statistics.median(r[key] for r in runs)


async def purge_run(engine: Engine, args: argparse.Namespace, where: Any) -> dict[str, Any]:
    """``--purge-runs`` times: purge ``--finished`` old completed executions alone (the
    purge rate); then as many times beside a live stepper (the rate under load, and what
    the purge does to live steps: their time includes waiting for a purge batch to let
    go), each with its own baseline (see ``_purge_once``). Reported: the median of the
    runs' rates and of their p50/p99 changes (each against its own baseline), and each
    run."""
    out: dict[str, Any] = {
        "batch": args.purge_batch, "pause_s": args.purge_pause, "share": args.purge_share,
        "runs": args.purge_runs,
    }  # fmt: skip
    alone = [await _purge_once(engine, args, where, live=False) for _ in range(args.purge_runs)]
    beside = [await _purge_once(engine, args, where, live=True) for _ in range(args.purge_runs)]
    out["alone"] = {"executions_per_s": _median(alone, "executions_per_s"), "each": alone}
    out["with_live_steps"] = {
        "executions_per_s": _median(beside, "executions_per_s"),
        "p50_change": _median(beside, "p50_change"),
        "p99_change": _median(beside, "p99_change"),
        "each": beside,
    }
    return out


CHECKPOINT = {"mode": "background"}  # --sqlite-checkpoint


async def _open(name: str, label: str) -> tuple[Engine, Any]:
    """An engine on a new store of backend ``name``; returns it and where it lives."""
    if name == "sqlite":
        WORK.mkdir(parents=True, exist_ok=True)
        path = WORK / f"scale-{label}-{uuid.uuid4().hex[:8]}.db"
        return _engine(SqliteStore(path, checkpoint=CHECKPOINT["mode"])), path
    from flowmonkey.stores.postgres import PostgresStore

    schema = f"fm_scale_{label}_{uuid.uuid4().hex[:8]}"
    return _engine(PostgresStore(PG, schema=schema, max_size=10)), schema


async def _drop(name: str, where: Any) -> None:
    if name == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{where}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(PG, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{where}" CASCADE')


async def _bytes(name: str, where: Any, *, vacuum: bool) -> int:
    return sqlite_bytes(where) if name == "sqlite" else await pg_bytes(where, vacuum=vacuum)


async def run_backend(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """An empty store and one with ``--size`` parked, measured in alternating rounds."""
    result: dict[str, Any] = {"backend": name, "size": args.size}
    empty, empty_at = await _open(name, "empty")
    full, full_at = await _open(name, "parked")
    try:
        async with empty, full:
            before = await _bytes(name, full_at, vacuum=True)
            began = time.perf_counter()
            if name == "sqlite":
                # The same store code on the same file, without an fsync per create:
                # generating is not what is measured.
                async with _engine(SqliteStore(full_at, synchronous="OFF")) as bulk:
                    await generate(bulk, args.size, finished=False, age=timedelta(days=10))
            else:
                await generate(full, args.size, finished=False, age=timedelta(days=10))
            result["generate_s"] = round(time.perf_counter() - began, 1)
            if name == "postgres":  # VACUUM FULL ANALYZE: statistics as in production
                await pg_bytes(full_at, vacuum=True)
                await pg_bytes(empty_at, vacuum=True)
            after = await _bytes(name, full_at, vacuum=False)
            result["bytes_per_parked"] = round((after - before) / max(args.size, 1))
            result["store_bytes"] = after
            measured = await measure({"empty": empty, "parked": full}, args)
            result["empty"], result["parked"] = measured["empty"], measured["parked"]
            result["purge"] = await purge_run(full, args, full_at)
    finally:
        await _drop(name, empty_at)
        await _drop(name, full_at)
    return result


def _print(results: list[dict[str, Any]]) -> None:
    for r in results:
        e, p = r["empty"], r["parked"]
        print(f"\n== {r['backend']}: {r['size']:,} parked (generated in {r['generate_s']}s), "
              f"{r['bytes_per_parked']} B per parked execution, store {r['store_bytes']:,} B")  # fmt: skip
        print(f"{'':28} {'empty':>16} {'parked':>16}")
        rows = [(f"{k} p50/p99 ms", e.get(k), v) for k, v in p.items()]
        for label, a, b in rows:
            fa = f"{a['p50']}/{a['p99']}" if a else "-"
            print(f"{label:28} {fa:>16} {b['p50']}/{b['p99']:>7}")
        pu = r["purge"]
        alone, beside = pu["alone"], pu["with_live_steps"]
        print(f"purge of {alone['each'][0]['purged']:,} old executions, median of {pu['runs']} runs: "
              f"alone {alone['executions_per_s']}/s; beside a live stepper "
              f"{beside['executions_per_s']}/s with the live step p50 "
              f"{beside['p50_change']:+.0%} and p99 {beside['p99_change']:+.0%}")  # fmt: skip
        for run in beside["each"]:
            print(f"  beside: {run['executions_per_s']}/s, live p50/p99 ms "
                  f"{run['live_step_ms']['p50']}/{run['live_step_ms']['p99']} vs "
                  f"{run['baseline_ms']['p50']}/{run['baseline_ms']['p99']} "
                  f"({run['p50_change']:+.0%}/{run['p99_change']:+.0%})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--size", type=int, default=1_000_000, help="parked executions")
    ap.add_argument("--finished", type=int, default=20_000, help="executions to purge")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--runs", type=int, default=50, help="timed runs per query")
    ap.add_argument("--live", type=int, default=100, help="live executions per measurement")
    ap.add_argument("--purge-batch", type=int, default=100,
                    help="most executions per purge batch (batches are sized by time)")
    ap.add_argument("--purge-pause", type=float, default=0.05,
                    help="longest wait for live runs before a purge batch (purge_pause)")  # fmt: skip
    ap.add_argument("--purge-runs", type=int, default=5,
                    help="purges alone and beside live steps, each (medians are reported)")
    ap.add_argument("--purge-share", type=float, default=None,
                    help="most of a busy engine's time the purge takes (default: the store's)")
    ap.add_argument("--purge-work", type=float, default=None,
                    help="seconds of per-execution work in a batch beside live runs, SQLite "
                         "and memory (engine/retention.py's _BUSY_WORK; for exploring)")
    ap.add_argument("--purge-beside-batch", type=int, default=None,
                    help="most executions per batch beside live runs on PostgreSQL "
                         "(engine/retention.py's _BESIDE_BATCH; for exploring)")
    ap.add_argument("--sqlite-checkpoint", choices=["background", "inline"],
                    default="background", help="SqliteStore(checkpoint=...)")
    args = ap.parse_args(argv)
    CHECKPOINT["mode"] = args.sqlite_checkpoint
    if args.purge_work is not None:
        retention._BUSY_WORK = args.purge_work
    if args.purge_beside_batch is not None:
        retention._BESIDE_BATCH = args.purge_beside_batch
    results = []
    for name in args.backends.split(","):
        print(f"[{datetime.now(UTC):%H:%M:%S}] {name}: {args.size:,} parked ...", flush=True)
        results.append(asyncio.run(run_backend(name.strip(), args)))
    _print(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"scale-{stamp}.json"
    out.write_text(json.dumps({"argv": sys.argv, "results": results}, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

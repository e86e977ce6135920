"""Shared workload definitions for the side-by-side peer benchmarks.

Pure standard library: every peer's virtualenv imports this module (the runners are
started with ``cwd`` = the repository root, so ``bench`` is importable everywhere).

The workloads are written once against :class:`Adapter`; each runner supplies an
adapter for its system (flowmonkey, DBOS Transact, Temporal).

Flows every adapter must provide (same shape, same no-op step for all systems):

``chain``   K steps, each the no-op step (input ``{"steps": K, ...}``).
``signal``  step ``mark`` -> wait for the signal ``go`` -> step ``finish``.
``sleep``   step returning ``time.time()`` -> durable sleep S seconds -> step returning
            ``time.time()``; output ``{"t0": .., "t1": ..}`` (lateness = t1 - t0 - S).
``side``    K steps, each inserting ``(flow_id, step)`` into the unconstrained
            ``side_effects`` table, then sleeping ``sleep_ms`` (W4, W5).
``idem``    1 step that counts its executions per key (W7).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import statistics
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / ".work"

ALL_WORKLOADS = ["W1", "W2", "W3", "W3b", "W4", "W5", "W7"]

# ---------------------------------------------------------------------------
# Parameters (quick: whole suite < 3 min on 2 cores; full: < 15 min, engine + peers < 20)
# ---------------------------------------------------------------------------

PARAMS: dict[str, dict[str, Any]] = {
    "quick": {
        "W1": {"k_flows": {1: 20, 10: 10, 100: 2}},
        "W2": {"n": 100, "steps": 3, "concurrency": [16, 64]},
        "W3": {"single": 5, "burst": 50},
        "W3b": {"n": 30, "sleep_s": 2.0},
        "W4": {"n": 30, "steps": 10, "sleep_ms": 20, "concurrency": 16, "kill_at": 0.5,
               "restart_after_s": 1.0},
        "W5": {"n": 100, "steps": 3, "concurrency": 16, "workers": [1, 2]},
        "W7": {"keys": 10, "starts_per_key": 100},
        "warmup_flows": 5,
    },
    # full: sized so that `python -m bench all` (engine ~4 min + peers) stays < 20 min;
    # Temporal's dev server (~50 ms/step) is the long pole (~2 min per measured run)
    "full": {
        "W1": {"k_flows": {1: 50, 10: 50, 100: 3}},
        "W2": {"n": 200, "steps": 3, "concurrency": [16, 64]},
        "W3": {"single": 20, "burst": 100},
        "W3b": {"n": 100, "sleep_s": 2.0},
        "W4": {"n": 60, "steps": 10, "sleep_ms": 20, "concurrency": 16, "kill_at": 0.5,
               "restart_after_s": 1.0},
        "W5": {"n": 200, "steps": 3, "concurrency": 16, "workers": [1, 2]},
        "W7": {"keys": 20, "starts_per_key": 100},
        "warmup_flows": 20,
    },
}

BASELINE_PARAMS = {
    "quick": {"commits": 300, "loop": 200_000},
    "full": {"commits": 1500, "loop": 1_000_000},
}

# ---------------------------------------------------------------------------
# The step everybody runs
# ---------------------------------------------------------------------------

PAD = "x" * 80


def noop_output(step: int = 0) -> dict[str, Any]:
    """The ~100 byte result of the shared no-op step."""
    return {"ok": True, "step": step, "pad": PAD}


async def noop_step(step: int = 0) -> dict[str, Any]:
    return noop_output(step)


# Per-process counters the in-process handlers update (W3 parking, W7 executions).
MARKS: set[str] = set()
EXEC_COUNTS: Counter[str] = Counter()


# ---------------------------------------------------------------------------
# Side-effects table (W4 / W5): a SQLite file or a Postgres table
# ---------------------------------------------------------------------------

SIDE_DDL = "CREATE TABLE IF NOT EXISTS side_effects (flow_id TEXT NOT NULL, step INTEGER NOT NULL)"


class SideEffects:
    """Unconstrained ``(flow_id, step)`` table; ``url`` is a sqlite path or postgres DSN."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self.is_pg = url.startswith("postgres")

    def _connect(self) -> Any:
        if self._conn is None:
            if self.is_pg:
                import psycopg  # present in every venv that runs a postgres backend

                self._conn = psycopg.connect(self.url, autocommit=True)
            else:
                c = sqlite3.connect(self.url, timeout=60, isolation_level=None,
                                    check_same_thread=False)
                c.execute("PRAGMA journal_mode=WAL")
                c.execute("PRAGMA synchronous=FULL")
                self._conn = c
        return self._conn

    def create(self) -> None:
        c = self._connect()
        c.execute(SIDE_DDL)
        c.execute("DELETE FROM side_effects")

    def insert(self, flow_id: str, step: int) -> None:
        c = self._connect()
        if self.is_pg:
            c.execute("INSERT INTO side_effects VALUES (%s, %s)", (flow_id, step))
        else:
            c.execute("INSERT INTO side_effects VALUES (?, ?)", (flow_id, step))

    def rows(self) -> list[tuple[str, int]]:
        c = self._connect()
        return [(r[0], int(r[1])) for r in c.execute("SELECT flow_id, step FROM side_effects")]

    def count(self) -> int:
        c = self._connect()
        return int(next(iter(c.execute("SELECT count(*) FROM side_effects")))[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_SIDE: dict[str, SideEffects] = {}


def side_effect(url: str, flow_id: str, step: int) -> None:
    """Called from every system's ``side`` step (one connection per process)."""
    se = _SIDE.get(url)
    if se is None:
        se = _SIDE[url] = SideEffects(url)
    se.insert(flow_id, step)


# ---------------------------------------------------------------------------
# Statistics & process-tree CPU
# ---------------------------------------------------------------------------


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(xs_s: list[float]) -> dict[str, Any]:
    ms = [x * 1000.0 for x in xs_s]
    return {
        "n": len(ms),
        "p50_ms": pct(ms, 50),
        "p95_ms": pct(ms, 95),
        "p99_ms": pct(ms, 99),
        "max_ms": max(ms) if ms else None,
        "mean_ms": statistics.fmean(ms) if ms else None,
    }


_CLK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[int, float] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    ppid = int(rest[1])
    cpu = (int(rest[11]) + int(rest[12])) / _CLK
    return ppid, cpu


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds of ``root`` and all its live descendants, plus all postgres processes."""
    root = root or os.getpid()
    stats: dict[int, tuple[int, float]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _proc_stat(int(d))
            if st:
                stats[int(d)] = st
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in stats.items():
        children[ppid].append(pid)
    total = 0.0
    todo = [root]
    seen: set[int] = set()
    while todo:
        p = todo.pop()
        if p in seen or p not in stats:
            continue
        seen.add(p)
        total += stats[p][1]
        todo.extend(children.get(p, []))
    for pid, (_, cpu) in stats.items():
        if pid not in seen and _comm(pid).startswith("postgres"):
            total += cpu
    return total


# ---------------------------------------------------------------------------
# The adapter interface
# ---------------------------------------------------------------------------


@dataclass
class Handle:
    """A started flow: ``id`` is the system's execution/workflow id."""

    id: str
    flow: str
    started_at: float = field(default_factory=time.time)
    extra: Any = None


class Adapter:
    """One implementation per system. All methods are coroutines.

    ``setup(backend)`` opens the system on ``sqlite`` or ``postgres`` (fresh database,
    prepared by the driver: ``self.pg_dsn`` / ``self.workdir``).

    Two execution modes: ``start_workers(n, concurrency, inprocess=True)`` runs the
    flows inside this process (client and worker are one, as an embedded library is
    used); ``inprocess=False`` spawns ``n`` worker subprocesses that ``kill_workers()``
    SIGKILLs (W4, W5). ``start`` always submits through this process.
    """

    name = "?"
    version = "?"
    backends: tuple[str, ...] = ("sqlite", "postgres")

    def __init__(self, workdir: Path, pg_dsn: str | None) -> None:
        self.workdir = workdir
        self.pg_dsn = pg_dsn
        self.backend = ""
        self.side_url = ""
        self.notes: dict[str, Any] = {}
        self.workload = ""

    async def setup(self, backend: str) -> None:
        self.backend = backend
        self.side_url = self.pg_dsn if backend == "postgres" else str(self.workdir / "side.db")
        assert self.side_url

    async def start(self, flow: str, input: dict[str, Any], key: str | None = None) -> Handle:
        raise NotImplementedError

    async def signal(self, handle: Handle, name: str, payload: Any) -> None:
        raise NotImplementedError

    async def result(self, handle: Handle, timeout: float = 120.0) -> Any:
        raise NotImplementedError

    async def start_workers(self, n: int, concurrency: int, inprocess: bool = True) -> None:
        raise NotImplementedError

    async def kill_workers(self) -> None:
        raise NotImplementedError

    async def stop_workers(self) -> None:
        """Graceful stop of whatever ``start_workers`` started (default: kill)."""
        await self.kill_workers()

    async def executions(self, key: str) -> int:
        """How many executions exist for an idempotency key (W7); default: counted
        by the ``idem`` step in this process."""
        return EXEC_COUNTS[key]

    async def teardown(self) -> None:
        pass


# ---------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def gather_limited(n: int, coros: list[Awaitable[Any]]) -> list[Any]:
    sem = asyncio.Semaphore(n)

    async def one(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


Record = dict[str, Any]


def _rec(workload: str, variant: str, **kw: Any) -> Record:
    return {"workload": workload, "variant": variant, **kw}


async def warmup(a: Adapter, n: int) -> None:
    for _ in range(n):
        h = await a.start("chain", {"steps": 3, "run": uid("warm")})
        await a.result(h)


async def w1(a: Adapter, p: dict[str, Any]) -> list[Record]:
    out = []
    for k, flows in p["k_flows"].items():
        k = int(k)
        lat: list[float] = []
        cpu0 = tree_cpu_seconds()
        t_all = time.perf_counter()
        for _ in range(flows):
            t0 = time.perf_counter()
            h = await a.start("chain", {"steps": k, "run": uid("w1")})
            await a.result(h)
            lat.append(time.perf_counter() - t0)
        wall = time.perf_counter() - t_all
        cpu = tree_cpu_seconds() - cpu0
        per_step = [x / k for x in lat]
        out.append(_rec("W1", f"K={k}", steps=k, flows=flows,
                        per_step=summary_ms(per_step), flow_latency=summary_ms(lat),
                        wall_s=wall, cpu_s=cpu, cpu_ms_per_step=1000 * cpu / (flows * k)))
    return out


async def w2(a: Adapter, p: dict[str, Any], c: int) -> Record:
    """Closed loop: a burst of N flows, at most C in flight (start -> result)."""
    n, k = p["n"], p["steps"]
    run = uid("w2")
    sem = asyncio.Semaphore(c)
    lat: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            t = time.perf_counter()
            h = await a.start("chain", {"steps": k, "run": run, "i": i})
            await a.result(h, timeout=300)
            lat.append(time.perf_counter() - t)

    cpu0 = tree_cpu_seconds()
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t0
    cpu = tree_cpu_seconds() - cpu0
    return _rec("W2", f"C={c}", concurrency=c, flows=n, steps=k, wall_s=wall,
                flows_per_s=n / wall, steps_per_s=n * k / wall,
                flow_latency=summary_ms(lat), cpu_s=cpu, cpu_s_per_1k_flows=1000 * cpu / n)


async def _wait_marks(keys: list[str], timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while not all(k in MARKS for k in keys):
        if time.time() > end:
            raise TimeoutError(f"{sum(k not in MARKS for k in keys)} flows never parked")
        await asyncio.sleep(0.02)


async def w3(a: Adapter, p: dict[str, Any]) -> list[Record]:
    out = []
    # one at a time: park all, then signal each and wait for its completion
    keys = [uid("w3s") for _ in range(p["single"])]
    hs = [await a.start("signal", {"run": k}) for k in keys]
    await _wait_marks(keys)
    await asyncio.sleep(0.3)  # let every flow reach its wait
    lat = []
    for h in hs:
        t0 = time.perf_counter()
        await a.signal(h, "go", {"v": 1})
        await a.result(h)
        lat.append(time.perf_counter() - t0)
    out.append(_rec("W3", "one-at-a-time", flows=len(hs), signal_to_done=summary_ms(lat)))
    # back to back: park a batch, send every signal without waiting, then collect
    keys = [uid("w3b") for _ in range(p["burst"])]
    hs = await gather_limited(32, [a.start("signal", {"run": k}) for k in keys])
    await _wait_marks(keys)
    await asyncio.sleep(0.5)
    sent: dict[str, float] = {}
    lat2: list[float] = []
    t_all = time.perf_counter()

    async def wait(h: Handle) -> None:
        await a.result(h, timeout=300)
        lat2.append(time.perf_counter() - sent[h.id])

    waits = [asyncio.ensure_future(wait(h)) for h in hs]
    for h in hs:
        sent[h.id] = time.perf_counter()
        await a.signal(h, "go", {"v": 1})
    await asyncio.gather(*waits)
    wall = time.perf_counter() - t_all
    out.append(_rec("W3", f"burst-{len(hs)}", flows=len(hs), signal_to_done=summary_ms(lat2),
                    wall_s=wall, flows_per_s=len(hs) / wall))
    return out


async def w3x(a: Adapter, p: dict[str, Any]) -> list[Record]:
    """W3 across processes: a worker subprocess drives the flows to their wait; this
    process sends the signal and sees the result (only adapters with
    ``cross_process_signal`` and ``wait_parked``)."""
    out = []
    await a.start_workers(1, 16, inprocess=False)
    try:
        n1, nb = p["single"], p["burst"]
        hs = await gather_limited(32, [a.start("signal", {"run": uid("w3x")})
                                       for _ in range(n1 + nb)])
        await a.wait_parked(hs)  # type: ignore[attr-defined]
        lat = []
        for h in hs[:n1]:
            t0 = time.perf_counter()
            await a.signal(h, "go", {"v": 1})
            await a.result(h)
            lat.append(time.perf_counter() - t0)
        out.append(_rec("W3", "cross-process one-at-a-time", flows=n1,
                        signal_to_done=summary_ms(lat)))
        sent: dict[str, float] = {}
        lat2: list[float] = []

        async def wait(h: Handle) -> None:
            await a.result(h, timeout=300)
            lat2.append(time.perf_counter() - sent[h.id])

        burst = hs[n1:]
        t_all = time.perf_counter()
        for h in burst:
            sent[h.id] = time.perf_counter()
            await a.signal(h, "go", {"v": 1})
        await asyncio.gather(*(wait(h) for h in burst))
        wall = time.perf_counter() - t_all
        out.append(_rec("W3", f"cross-process burst-{nb}", flows=nb,
                        signal_to_done=summary_ms(lat2), wall_s=wall, flows_per_s=nb / wall))
    finally:
        await a.stop_workers()
    return out


async def w3b(a: Adapter, p: dict[str, Any]) -> Record:
    n, s = p["n"], p["sleep_s"]
    hs = await gather_limited(32, [a.start("sleep", {"run": uid("w3t"), "sleep_s": s})
                                   for _ in range(n)])
    res = await asyncio.gather(*(a.result(h, timeout=120 + s) for h in hs))
    late = [r["t1"] - r["t0"] - s for r in res]
    return _rec("W3b", f"sleep={s}s", flows=n, sleep_s=s, lateness=summary_ms(late),
                min_lateness_ms=1000 * min(late))


def _side_analysis(rows: list[tuple[str, int]], ids: list[str], steps: int) -> dict[str, Any]:
    c = Counter(rows)
    dups = sum(v - 1 for v in c.values() if v > 1)
    per_flow_dup: Counter[str] = Counter()
    for (f, _s), v in c.items():
        if v > 1:
            per_flow_dup[f] += v - 1
    missing = sum(1 for f in ids for s in range(steps) if (f, s) not in c)
    return {"rows": len(rows), "duplicate_side_effects": dups, "missing_steps": missing,
            "flows_with_duplicates": len(per_flow_dup),
            # one kill can legitimately repeat at most the step each flow had in flight;
            # more than one repeat per flow means a completed step ran again
            "reexecuted_completed_steps": sum(max(0, v - 1) for v in per_flow_dup.values())}


async def w4(a: Adapter, p: dict[str, Any]) -> Record:
    n, k, c = p["n"], p["steps"], p["concurrency"]
    se = SideEffects(a.side_url)
    se.create()
    await a.start_workers(1, c, inprocess=False)
    ids = [uid("w4") for _ in range(n)]
    hs = await gather_limited(32, [a.start("side", {"run": i, "steps": k, "sleep_ms": p["sleep_ms"],
                                                    "side": a.side_url}, key=i) for i in ids])
    target = int(n * k * p["kill_at"])
    t0 = time.time()
    while se.count() < target:
        if time.time() - t0 > 120:
            raise TimeoutError("W4: no progress before kill")
        await asyncio.sleep(0.01)
    await a.kill_workers()
    rows_at_kill = se.rows()
    per_flow = Counter(f for f, _ in set(rows_at_kill))
    in_flight = sum(1 for f in ids if 0 < per_flow.get(f, 0) < k)
    done_at_kill = sum(1 for f in ids if per_flow.get(f, 0) >= k)
    await asyncio.sleep(p["restart_after_s"])
    count_before = se.count()
    t_restart = time.perf_counter()
    await a.start_workers(1, c, inprocess=False)
    first_progress = None
    results: dict[str, Any] = {}

    async def wait(h: Handle) -> None:
        try:
            results[h.id] = await a.result(h, timeout=120)
        except Exception as e:  # a lost flow
            results[h.id] = e

    waiter = asyncio.ensure_future(asyncio.gather(*(wait(h) for h in hs)))
    while not waiter.done():
        if first_progress is None and se.count() > count_before:
            first_progress = time.perf_counter() - t_restart
        await asyncio.sleep(0.01)
    all_done = time.perf_counter() - t_restart
    await a.stop_workers()
    lost = sum(1 for v in results.values() if isinstance(v, Exception))
    analysis = _side_analysis(se.rows(), ids, k)
    se.close()
    return _rec("W4", "kill@50%", flows=n, steps=k, concurrency=c, partial_at_kill=in_flight,
                done_at_kill=done_at_kill, restart_to_first_progress_s=first_progress,
                restart_to_all_done_s=all_done, lost_flows=lost, **analysis,
                # at most C steps run at once on the killed worker: more duplicates than
                # that (or more than one per flow) means completed steps ran again
                dup_within_in_flight=analysis["duplicate_side_effects"] <= c)


async def w5(a: Adapter, p: dict[str, Any], workers: int) -> Record:
    n, k, c = p["n"], p["steps"], p["concurrency"]
    se = SideEffects(a.side_url)
    se.create()
    await a.start_workers(workers, c, inprocess=False)
    await asyncio.sleep(0.5)
    ids = [uid("w5") for _ in range(n)]
    cpu0 = tree_cpu_seconds()
    t0 = time.perf_counter()
    hs = await gather_limited(32, [a.start("side", {"run": i, "steps": k, "sleep_ms": 0,
                                                    "side": a.side_url}, key=i) for i in ids])
    await asyncio.gather(*(a.result(h, timeout=300) for h in hs))
    wall = time.perf_counter() - t0
    cpu = tree_cpu_seconds() - cpu0
    await a.stop_workers()
    analysis = _side_analysis(se.rows(), ids, k)
    se.close()
    return _rec("W5", f"workers={workers}", workers=workers, flows=n, steps=k, concurrency=c,
                wall_s=wall, flows_per_s=n / wall, cpu_s=cpu, **analysis)


async def w7(a: Adapter, p: dict[str, Any]) -> Record:
    keys = [uid("w7") for _ in range(p["keys"])]
    lat: list[float] = []

    async def one(key: str) -> str:
        t0 = time.perf_counter()
        h = await a.start("idem", {"run": key}, key=key)
        lat.append(time.perf_counter() - t0)
        return h.id

    t_all = time.perf_counter()
    ids = await asyncio.gather(*(one(k) for k in keys for _ in range(p["starts_per_key"])))
    wall = time.perf_counter() - t_all
    distinct_ids = len(set(ids))
    # wait for the runs to finish, then count the step's executions per key
    firsts = {}
    for key, hid in zip([k for k in keys for _ in range(p["starts_per_key"])], ids, strict=True):
        firsts.setdefault(key, Handle(hid, "idem"))
    await asyncio.gather(*(a.result(h) for h in firsts.values()))
    await asyncio.sleep(0.2)
    execs = sum([await a.executions(k) for k in keys])
    stored = None  # executions the store holds for the W7 flow (fresh database per run)
    if hasattr(a, "stored_executions"):
        stored = await a.stored_executions("idem")
    return _rec("W7", f"{p['keys']}x{p['starts_per_key']}", keys=len(keys),
                starts=len(ids), distinct_execution_ids=distinct_ids, executions=execs,
                stored_executions=stored,
                correct=(execs == len(keys) and distinct_ids == len(keys)
                         and stored in (None, len(keys))),
                start_latency=summary_ms(lat), wall_s=wall)


async def run_workloads(a: Adapter, mode: str, workloads: list[str],
                        emit: Callable[[Record], None]) -> None:
    P = PARAMS[mode]
    inproc_needed = any(w in workloads for w in ("W1", "W2", "W3", "W3b", "W7"))
    if inproc_needed:
        await a.start_workers(1, 16, inprocess=True)
        await warmup(a, P["warmup_flows"])
    for w in workloads:
        t0 = time.perf_counter()
        a.workload = w  # an adapter may pick its path per workload (dbos-sync)
        try:
            if w == "W1":
                recs = await w1(a, P["W1"])
            elif w == "W2":
                recs = []
                for c in P["W2"]["concurrency"]:
                    await a.stop_workers()
                    await a.start_workers(1, c, inprocess=True)
                    recs.append(await w2(a, P["W2"], c))
                await a.stop_workers()
                await a.start_workers(1, 16, inprocess=True)
            elif w == "W3":
                recs = await w3(a, P["W3"])
                if getattr(a, "cross_process_signal", False):
                    await a.stop_workers()
                    try:
                        recs += await w3x(a, P["W3"])
                    finally:
                        await a.start_workers(1, 16, inprocess=True)
            elif w == "W3b":
                recs = [await w3b(a, P["W3b"])]
            elif w == "W4":
                await a.stop_workers()
                recs = [await w4(a, P["W4"])]
            elif w == "W5":
                await a.stop_workers()
                recs = [await w5(a, P["W5"], n) for n in P["W5"]["workers"]]
                rate = {r["workers"]: r["flows_per_s"] for r in recs}
                if 1 in rate and 2 in rate:
                    recs[-1]["scaling_vs_1"] = rate[2] / rate[1]
            elif w == "W7":
                await a.stop_workers()
                await a.start_workers(1, 16, inprocess=True)
                recs = [await w7(a, P["W7"])]
            else:
                raise ValueError(w)
        except Exception as e:
            import traceback

            recs = [_rec(w, "error", error=f"{type(e).__name__}: {e}",
                         traceback=traceback.format_exc()[-2000:])]
            try:
                await a.kill_workers()
                if inproc_needed:
                    await a.start_workers(1, 16, inprocess=True)
            except Exception:
                pass
        for r in recs:
            r["elapsed_s"] = time.perf_counter() - t0
            emit(r)
        if w in ("W4", "W5") and inproc_needed:
            await a.start_workers(1, 16, inprocess=True)


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def emit_json(rec: Record) -> None:
    print(json.dumps(rec, default=str), flush=True)

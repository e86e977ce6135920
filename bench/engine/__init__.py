"""Engine benchmarks: ``python -m bench engine [--quick] [--only NAME,...] [--profile]``.

Each benchmark takes the median of 5 measured runs (3 with ``--quick``) and, where it has
one, the median ratio to a baseline measured in the same run (python floor, raw commit
rate, single stream, sequential steps). Prints a rich table, writes
``bench/results/engine-<timestamp>.json`` and, for full runs, refreshes the tables in
``docs/benchmarks.md``. ``--profile`` runs each selected benchmark once under cProfile
and prints the top of the profile (``.prof`` files go to ``bench/.work/``).

Benchmarks: memory-throughput, context-growth, sqlite-durable, postgres-single,
postgres-concurrent, signal-latency, parallel-fanout, subflow-fanout, pipe-cost,
table-export. Postgres ones use
``BENCH_PG_ADMIN`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and a
throwaway schema each run; they are skipped when the server is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
import traceback
from datetime import UTC, datetime

__all__ = ["ORDER", "main"]

ORDER = [
    "memory-throughput",
    "context-growth",
    "sqlite-durable",
    "postgres-single",
    "postgres-concurrent",
    "signal-latency",
    "parallel-fanout",
    "subflow-fanout",
    "pipe-cost",
    "table-export",
]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="3 runs, smaller sizes (< 3 min)")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--runs", type=int, default=None, help="override the number of runs")
    ap.add_argument("--profile", action="store_true",
                    help="one run each under cProfile; print the top functions")  # fmt: skip
    ap.add_argument("--docs", dest="docs", action="store_true", default=None,
                    help="update docs/benchmarks.md (default: full runs of all)")  # fmt: skip
    ap.add_argument("--no-docs", dest="docs", action="store_false")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # the benchmark modules register themselves on import
    from bench.engine import core, distributed, tables, throughput

    _ = (distributed, tables, throughput)
    names = sorted(core.REGISTRY, key=ORDER.index)
    if args.list:
        for name in names:
            print(f"{name:22} {core.REGISTRY[name][0]}")
        return 0
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in core.REGISTRY]
        if unknown:
            print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}",
                  file=sys.stderr)  # fmt: skip
            return 2
        names = sorted(wanted, key=ORDER.index)
    runs = args.runs or (1 if args.profile else 3 if args.quick else 5)
    cfg = core.Config(quick=args.quick, runs=runs, profile=args.profile)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    command = "python -m bench engine " + shlex.join(sys.argv[2:] if argv is None else argv)
    results = asyncio.run(_run_all(cfg, names, stamp))
    meta = {
        "suite": "engine",
        "started": started.isoformat(timespec="seconds"),
        "command": command.strip(),
        "mode": "quick" if args.quick else "full",
        "runs": runs,
        "profile": args.profile,
        "machine": core.machine(),
    }
    mode = "quick" if args.quick else "full"
    core.print_table(results, f"flowmonkey engine benchmarks ({mode}, median of {runs} runs)")
    if args.profile:
        return 0
    path = core.write_json(results, meta, stamp)
    print(f"results: {path.relative_to(core.ROOT)}")
    docs = args.docs if args.docs is not None else (not args.quick and not args.only)
    if docs and core.update_docs(results, meta, path):
        print(f"updated {core.DOCS.relative_to(core.ROOT)}")
        from bench.retention import keep_latest

        keep_latest(path)
    return 1 if any(r.skipped and r.skipped.startswith("error") for r in results) else 0


async def _run_all(cfg: object, names: list[str], stamp: str) -> list[object]:
    from bench.engine import core

    assert isinstance(cfg, core.Config)
    out = []
    for name in names:
        title, fn = core.REGISTRY[name]
        res = core.BenchResult(name=name, title=title)
        print(f"[{datetime.now().strftime('%H:%M:%S')}] {name}: {title} ...", flush=True)
        t0 = time.perf_counter()
        res.load.append(round(os.getloadavg()[0], 2))
        try:
            if cfg.profile:
                await _profiled(fn, cfg, res, stamp)
            else:
                await fn(cfg, res)
        except Exception as exc:
            traceback.print_exc()
            res.skipped = f"error: {type(exc).__name__}: {exc}"[:300]
        res.seconds = round(time.perf_counter() - t0, 1)
        res.load.append(round(os.getloadavg()[0], 2))
        print(f"    {res.seconds:.1f} s (load average {res.load[0]} -> {res.load[1]})", flush=True)
        out.append(res)
    return out


async def _profiled(fn: object, cfg: object, res: object, stamp: str) -> None:
    import cProfile
    import io
    import pstats

    from bench.engine import core
    from bench.engine.fixtures import WORK

    assert isinstance(res, core.BenchResult) and callable(fn)
    prof = cProfile.Profile()
    prof.enable()
    try:
        await fn(cfg, res)
    finally:
        prof.disable()
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"engine-{res.name}-{stamp}.prof"
    prof.dump_stats(path)
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(25)
        print(f"--- {res.name}: top 25 by {key} ({path.relative_to(core.ROOT)}) ---")
        print("\n".join(buf.getvalue().splitlines()[6:]))

"""Shared runner entry point: every system's runner calls :func:`runner_main`.

A runner is started by the driver as a subprocess, with the system's own virtualenv
python and ``cwd`` = the repository root. It runs the selected workloads against its
adapter and prints one JSON object per result line, prefixed with ``BENCH_JSON ``,
on stdout (everything else a peer library prints is ignored by the driver).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.workloads import ALL_WORKLOADS, Adapter, run_workloads

PREFIX = "BENCH_JSON "


def emit(rec: dict[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(rec, default=str) + "\n")
    sys.stdout.flush()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    p.add_argument("--mode", default="quick", choices=["quick", "full"])
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    p.add_argument("--workdir", required=True)
    p.add_argument("--pg-dsn", default=None)
    p.add_argument("--run", type=int, default=0)
    return p.parse_args(argv)


def runner_main(make_adapter: Callable[[Path, str | None], Adapter],
                argv: list[str] | None = None) -> None:
    args = parse(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    wl = [w for w in ALL_WORKLOADS if w in args.workloads.split(",")]

    async def main() -> None:
        a = make_adapter(workdir, args.pg_dsn)
        t0 = time.perf_counter()
        await a.setup(args.backend)
        setup_s = time.perf_counter() - t0
        base = {"system": a.name, "version": a.version, "backend": args.backend,
                "mode": args.mode, "run": args.run}

        def out(rec: dict[str, Any]) -> None:
            emit({**base, **rec})

        out({"workload": "setup", "variant": "", "setup_s": setup_s, "notes": a.notes})
        try:
            await run_workloads(a, args.mode, wl, out)
        finally:
            try:
                await a.kill_workers()
            except Exception:
                pass
            await a.teardown()
            out({"workload": "meta", "variant": "", "notes": a.notes})

    asyncio.run(main())

"""Two (or more) processes writing to one SQLite file: the write-lock wait, with and
without the store's ``flock`` writer queue (``stores/sqlite_lock.py``).

    .venv/bin/python bench/repro/sqlite_writers.py [--procs 2] [--n 2000] [--rounds 2]

Each process runs ``--n`` small write transactions through ``SqliteStore._tx`` (one
insert each, ``synchronous=FULL``), with ~0.3 ms of Python between them (what a worker
does between two commits), and reports p50/p99/max of each transaction's wall time.
Rounds alternate "lock" and "no lock" (``WriterLock.acquire`` patched to return False:
SQLite's busy handler alone) on fresh files.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path


def _child(path: str, n: int, use_lock: bool, start: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from flowmonkey.stores import sqlite_lock
    from flowmonkey.stores.sqlite import SqliteStore

    if not use_lock:
        sqlite_lock.WriterLock.acquire = lambda self, timeout_s: False  # type: ignore[method-assign]

    async def main() -> list[float]:
        store = SqliteStore(path, synchronous="FULL")
        await store.initialize()
        await store._tx(True, lambda c: c.execute("CREATE TABLE IF NOT EXISTS w (x)"))
        while time.time() < start:
            await asyncio.sleep(0.001)
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            await store._tx(True, lambda c, i=i: c.execute("INSERT INTO w VALUES (?)", (i,)))
            times.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            while time.perf_counter() - t1 < 0.0003:  # the worker's Python between commits
                pass
        await store.close()
        return times

    out.put(asyncio.run(main()))


def run(procs: int, n: int, use_lock: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "w.db")
        q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        start = time.time() + 1.0
        ps = [mp.Process(target=_child, args=(path, n, use_lock, start, q)) for _ in range(procs)]
        for p in ps:
            p.start()
        times = [t for _ in ps for t in q.get()]
        for p in ps:
            p.join()
    times.sort()
    return {
        "p50_ms": statistics.median(times) * 1e3,
        "p99_ms": times[int(len(times) * 0.99)] * 1e3,
        "max_ms": times[-1] * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    for r in range(a.rounds):
        for use_lock in (True, False):
            res = run(a.procs, a.n, use_lock)
            print(
                f"round {r} {'lock   ' if use_lock else 'no lock'}: "
                + ", ".join(f"{k} {v:.2f}" for k, v in res.items()),
                flush=True,
            )


if __name__ == "__main__":
    main()

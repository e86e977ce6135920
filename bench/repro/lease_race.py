"""Repro: one Worker re-grants a lease it already holds (duplicate step runs, no crash).

    psql -h 127.0.0.1 -U postgres -d test -c 'CREATE DATABASE bench_race'
    .venv/bin/python bench/repro/lease_race.py postgresql://postgres@127.0.0.1:5432/bench_race

One ``Worker`` (concurrency 16, LISTEN/NOTIFY wakes) and a client engine creating 300
3-step executions. Counts leases granted by ``store.acquire`` (the worker's
``_take_notified`` path) for executions the same worker had already leased through
``store.claim``: any count > 0 means two tasks drive one execution (see
``bench/peers_analysis.md`` item 4). Typically 1-3 per run on the 2-core VM.
"""

from __future__ import annotations

import asyncio
import sys

from bench.runners.flowmonkey_runner import build_engine, make_worker

from flowmonkey.stores.postgres import PostgresStore

claimed: set[str] = set()
regranted: list[tuple[str, int]] = []
_claim, _acquire = PostgresStore.claim, PostgresStore.acquire


async def claim(self, **kw):  # type: ignore[no-untyped-def]
    out = await _claim(self, **kw)
    claimed.update(a.execution.id for a in out)
    return out


async def acquire(self, execution_id, **kw):  # type: ignore[no-untyped-def]
    out = await _acquire(self, execution_id, **kw)
    if out.lease is not None and execution_id in claimed:
        regranted.append((execution_id, out.lease.token))
    return out


PostgresStore.claim, PostgresStore.acquire = claim, acquire  # type: ignore[method-assign]


async def main(dsn: str) -> None:
    client, worker_engine = build_engine(dsn), build_engine(dsn)
    async with client, worker_engine:
        worker = make_worker(worker_engine, 16)
        task = asyncio.create_task(worker.run(handle_signals=False))
        await asyncio.sleep(0.5)
        for i in range(300):
            await client.create("chain-3", {"steps": 3, "run": str(i)})
        await asyncio.sleep(3)
        worker.stop()
        await task
    print(
        f"leases re-granted to the worker that already held them: {len(regranted)} {regranted[:3]}"
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

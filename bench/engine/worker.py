"""A bench worker process: ``python -m bench.engine.worker --store URL --ready FILE``.

Equivalent to ``flowmonkey worker --store URL`` with the bench flows and handlers
registered (``bench.engine.fixtures``). Touches ``--ready`` once the worker is running;
stops gracefully on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from bench.engine import fixtures as fx
from flowmonkey import open_store
from flowmonkey.worker import Worker, WorkerOptions


async def serve(store_url: str, concurrency: int, poll: float, ready: Path) -> None:
    engine = fx.build_engine(open_store(store_url))
    async with engine:
        worker = Worker(engine, WorkerOptions(concurrency=concurrency, poll_interval=poll,
                                              shutdown_grace=2.0))  # fmt: skip
        task = asyncio.create_task(worker.run(handle_signals=True))
        while worker.state != "running" and not task.done():
            await asyncio.sleep(0.01)
        ready.touch()  # noqa: ASYNC240
        await task


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.engine.worker")
    ap.add_argument("--store", required=True)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--poll", type=float, default=0.05, help="poll interval, seconds")
    ap.add_argument("--ready", required=True, type=Path)
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(a.store, a.concurrency, a.poll, a.ready))


if __name__ == "__main__":
    main()

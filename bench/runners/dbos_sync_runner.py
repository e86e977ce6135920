"""DBOS Transact, synchronous path (runs in bench/.venvs/dbos): its most common use.

A synchronous ``@DBOS.workflow()`` of synchronous ``@DBOS.step()`` functions, called
directly, the way DBOS's own benchmarks and quick starts run it. It applies to the
workloads that start a flow and take its result in the caller: W1 (one at a time: a
direct call on the runner's thread) and W2 (C in flight: C threads, each calling the
workflow directly). The other workloads need a handle before the flow ends (signals,
timers, worker queues); they stay on the async path of ``dbos_runner``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbos import DBOS

from bench.runners.dbos_runner import DbosAdapter
from bench.workloads import Handle, noop_output

SYNC_WORKLOADS = ("W1", "W2")


@DBOS.step()
def noop_sync(step: int) -> dict[str, Any]:
    return noop_output(step)


@DBOS.workflow()
def chain_sync(inp: dict[str, Any]) -> dict[str, Any]:
    for i in range(inp["steps"]):
        noop_sync(i)
    return noop_output(inp["steps"])


class DbosSyncAdapter(DbosAdapter):
    name = "dbos-sync"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="dbos-sync")

    async def start(self, flow: str, input: dict[str, Any], key: str | None = None) -> Handle:
        if flow != "chain" or self.procs or key is not None:
            return await super().start(flow, input, key)
        if getattr(self, "workload", "") == "W2":
            out = await asyncio.get_running_loop().run_in_executor(self.pool, chain_sync, input)
        else:
            out = chain_sync(input)  # called directly, blocking: one flow at a time
        return Handle("", flow, extra=_Done(out))

    async def result(self, handle: Handle, timeout: float = 120.0) -> Any:
        if isinstance(handle.extra, _Done):
            return handle.extra.value
        return await super().result(handle, timeout)

    async def teardown(self) -> None:
        self.pool.shutdown(wait=True)
        await super().teardown()


class _Done:
    """The result of a flow that already ran to its end inside ``start``."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


if __name__ == "__main__":
    from bench.runners.common import runner_main

    runner_main(DbosSyncAdapter)

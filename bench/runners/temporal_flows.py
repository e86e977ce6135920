"""Temporal workflow definitions (kept free of non-deterministic imports for the sandbox).

Steps are activities (registered by name in ``temporal_runner``); the payload of the
no-op step is the same ~100 B dict every system returns.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

# Per-attempt activity timeout: an activity in flight on a SIGKILLed worker is
# retried after this (W4). Temporal's usual way around it is heartbeating.
ACTIVITY_TIMEOUT = timedelta(seconds=5)
PAD = "x" * 80


def _out(step: int) -> dict[str, Any]:
    return {"ok": True, "step": step, "pad": PAD}


async def _act(name: str, *args: Any) -> Any:
    return await workflow.execute_activity(name, args=list(args),
                                           start_to_close_timeout=ACTIVITY_TIMEOUT)


@workflow.defn(name="chain")
class Chain:
    @workflow.run
    async def run(self, inp: dict[str, Any]) -> dict[str, Any]:
        for i in range(inp["steps"]):
            await _act("noop", i)
        return _out(inp["steps"])


@workflow.defn(name="signal")
class SignalFlow:
    def __init__(self) -> None:
        self.payload: Any = None

    @workflow.signal(name="go")
    def go(self, payload: Any) -> None:
        self.payload = payload

    @workflow.run
    async def run(self, inp: dict[str, Any]) -> dict[str, Any]:
        await _act("mark", inp["run"])
        await workflow.wait_condition(lambda: self.payload is not None)
        await _act("noop", 1)
        return _out(2)


@workflow.defn(name="sleep")
class SleepFlow:
    @workflow.run
    async def run(self, inp: dict[str, Any]) -> dict[str, Any]:
        t0 = await _act("now")
        await asyncio.sleep(inp["sleep_s"])  # a durable timer
        t1 = await _act("now")
        return {"t0": t0, "t1": t1}


@workflow.defn(name="side")
class SideFlow:
    @workflow.run
    async def run(self, inp: dict[str, Any]) -> dict[str, Any]:
        for i in range(inp["steps"]):
            await _act("side", inp["side"], inp["run"], i, inp["sleep_ms"])
        return _out(inp["steps"])


@workflow.defn(name="idem")
class IdemFlow:
    @workflow.run
    async def run(self, inp: dict[str, Any]) -> dict[str, Any]:
        await _act("idem", inp["run"])
        return _out(1)


WORKFLOWS = [Chain, SignalFlow, SleepFlow, SideFlow, IdemFlow]

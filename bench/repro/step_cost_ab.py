"""A/B of the in-memory step path between two checkouts, robust to a busy machine.

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old/src .venv/bin/python bench/repro/step_cost_ab.py 300 calls
    PYTHONPATH=src          .venv/bin/python bench/repro/step_cost_ab.py 300 calls
    PYTHONPATH=/tmp/old/src .venv/bin/python bench/repro/step_cost_ab.py 1000 cpu   # alternate

``calls`` counts Python function calls per step under cProfile: deterministic, so a
refactor that adds indirection on the step path shows up whatever else the machine does.
``cpu`` prints process CPU time per step (alternate the two checkouts a few times and
compare medians). 10-step no-op flows on a ``MemoryStore``, history and events on.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time

from flowmonkey import Engine, FlowBuilder, HandlerRegistry
from flowmonkey.stores.memory import MemoryStore


async def main(n, profile):
    reg = HandlerRegistry()

    async def noop(ctx):
        return None

    reg.register(noop, type="noop")
    b = FlowBuilder("ten", "1.0.0")
    for i in range(10):
        b.step(f"s{i}", "noop")
    flow = b.build()
    async with Engine(MemoryStore(), reg) as engine:
        engine.flows.register(flow)
        for _ in range(50):
            await engine.start("ten")
        pr = cProfile.Profile() if profile else None
        t0 = time.process_time()
        if pr:
            pr.enable()
        for _ in range(n):
            await engine.start("ten")
        if pr:
            pr.disable()
        cpu = time.process_time() - t0
    if pr:
        st = pstats.Stats(pr)
        print("calls/step", st.total_calls / (n * 10))
    else:
        print("cpu_us/step", cpu / (n * 10) * 1e6)


asyncio.run(main(int(sys.argv[1]), sys.argv[2] == "calls"))

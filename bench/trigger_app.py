"""Handlers and the webhook app of ``bench/triggers.py`` (loaded by its subprocesses)."""

from __future__ import annotations

import os
from typing import Any

from flowmonkey import FlowBuilder, Result, handler
from flowmonkey.model.flow import Flow


@handler("bench.noop")
async def noop(ctx: Any) -> Result:
    """Do nothing: the benchmark measures firing, not steps."""
    return Result.success()


def tick_flow() -> Flow:
    """One no-op step."""
    return FlowBuilder("tick").step("s", "bench.noop").build()


def make_app() -> Any:
    """The API over ``BENCH_STORE`` without auth or inline runs (``serve --no-worker``):
    a hook's cost is verify + validate + map + create."""
    from flowmonkey.api import ApiSettings, create_app
    from flowmonkey.engine.engine import Engine
    from flowmonkey.stores import open_store

    engine = Engine(open_store(os.environ["BENCH_STORE"]))
    settings = ApiSettings(
        inline=False, request_log=False, public_rate_limit=1e9, public_rate_burst=10**9
    )
    return create_app(engine, auth=False, settings=settings, metrics=True)

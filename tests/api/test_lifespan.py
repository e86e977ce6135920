"""The app's lifespan: inline runs get the shutdown grace, then are cancelled."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from flowmonkey import FlowBuilder, Result, handler
from flowmonkey.api import ApiSettings, create_app
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.testing import make_engine


async def test_a_step_still_running_at_shutdown_is_cancelled_after_the_grace(
    tmp_path: Path,
) -> None:
    entered = asyncio.Event()
    never = asyncio.Event()

    @handler("block")
    async def block(ctx: Any) -> Result:
        entered.set()
        await never.wait()  # a step that would outlive any grace
        return Result.success()

    flow = FlowBuilder("blocking").step("b", "block").build()
    engine = make_engine([block], [flow], store=SqliteStore(tmp_path / "l.db"))
    app = create_app(engine, auth=False, settings=ApiSettings(shutdown_grace=0.05))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/api/v1/executions", json={"flow_id": "blocking"})
            assert response.status_code == 201
            await asyncio.wait_for(entered.wait(), 10)
        # Leaving the block runs the shutdown: it must not wait for `never`.
    assert app.state.flowmonkey.background == set()
    stored = SqliteStore(tmp_path / "l.db")
    await stored.initialize()
    try:
        execution = await stored.get(response.json()["id"])
        assert execution is not None and not execution.status.is_terminal
    finally:
        await stored.close()

"""Concurrent starts through the API on PostgreSQL: every one is created once.

The API turns on the engine's group create, which sends concurrent creates to a store's
``create_many`` (SQLite: one transaction, one outcome per item). A PostgreSQL method of
the same name with another contract (the bulk loader, now ``create_bulk``) once turned
these requests into 500s; this keeps the two apart.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from flowmonkey import FlowBuilder, Result, handler
from flowmonkey.api import create_app
from flowmonkey.testing import FakeClock, make_engine
from postgres.conftest import StoreMaker

pytestmark = pytest.mark.postgres


@handler("noop")
async def noop(ctx: Any) -> Result:
    return Result.success()


async def test_concurrent_starts_are_each_created_once(make_store: StoreMaker) -> None:
    store = await make_store()
    flow = FlowBuilder("three").step("a", "noop").step("b", "noop").build()
    engine = make_engine([noop], [flow], store=store, clock=FakeClock())
    app = create_app(engine, auth=False, owns_engine=False)
    assert engine.runtime.creator.allowed
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):

        async def start(n: int) -> httpx.Response:
            return await client.post(
                "/api/v1/executions", json={"flow_id": "three", "input": {"n": n}}
            )

        answers = await asyncio.gather(*(start(n) for n in range(24)))
    assert [a.status_code for a in answers] == [201] * 24, answers[0].text
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 24
    for answer in answers:
        stored = await store.get(answer.json()["id"])
        assert stored is not None and stored.context == {"n": answer.json()["context"]["n"]}

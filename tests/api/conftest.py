"""The API under test: ``create_app`` over a SQLite engine, driven through httpx (ASGI).

``api`` gives a started app (lifespan entered), a client per key, and the engine and
fake clock behind it. Keys: ``admin`` (``*``, every scope), ``acme`` and ``globex``
(tenant keys with read+write), ``reader`` (acme, read only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowmonkey import FlowBuilder, Result, handler
from flowmonkey.api import ApiSettings, create_app
from flowmonkey.engine.engine import Engine
from flowmonkey.model.keys import new_api_key
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.testing import FakeClock, make_engine


@handler("noop")
async def noop(ctx: Any) -> Result:
    return Result.success({"ok": True})


@handler("wait")
async def wait(ctx: Any) -> Result:
    return Result.wait(reason="waiting for input")


@handler("ticket")
async def ticket(ctx: Any) -> Result:
    token = ctx.create_resume_token(timedelta(seconds=60))
    return Result.wait(reason="waiting for the link", output={"token": token})


@handler("gate")
async def gate(ctx: Any) -> Result:
    if ctx.context.get("open"):
        return Result.success({"passed": True})
    return Result.failure("CLOSED", "the gate is closed")


FLOWS = [
    FlowBuilder("three").step("a", "noop").step("b", "noop").step("c", "noop").build(),
    FlowBuilder("approval").step("ask", "wait", output_key="answer").step("done", "noop").build(),
    FlowBuilder("gated").step("g", "gate").build(),
    FlowBuilder("link").step("t", "ticket", output_key="ticket").step("done", "noop").build(),
    FlowBuilder("inbox")
    .user_task(
        "review",
        "Review",
        form={
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        },
        output_key="review",
    )
    .build(),
]


@dataclass
class Api:
    """A running app and its clients."""

    app: Any
    engine: Engine
    clock: FakeClock
    keys: dict[str, str]
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    def __getitem__(self, who: str) -> httpx.AsyncClient:
        return self.clients[who]


def _client(app: Any, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


async def open_api(
    tmp_path: Path, *, settings: ApiSettings | None = None, auth: bool = True
) -> AsyncIterator[Api]:
    clock = FakeClock()
    engine = make_engine(
        [noop, wait, gate, ticket], FLOWS, store=SqliteStore(tmp_path / "api.db"), clock=clock
    )
    app = create_app(engine, auth=auth, settings=settings)
    async with app.router.lifespan_context(app):
        keys: dict[str, str] = {}
        now = clock.now()
        for name, tenant, scopes in (
            ("admin", "*", ("read", "write", "admin")),
            ("star", "*", ("read", "write")),
            ("acme", "acme", ("read", "write")),
            ("globex", "globex", ("read", "write")),
            ("reader", "acme", ("read",)),
        ):
            secret, record = new_api_key(
                name=name, tenant=tenant, scopes=scopes, now=now, expires_in=timedelta(days=1)
            )
            await engine.store.create_api_key(record)
            keys[name] = secret
        api = Api(app=app, engine=engine, clock=clock, keys=keys)
        api.clients = {name: _client(app, secret) for name, secret in keys.items()}
        api.clients["anonymous"] = _client(app, None)
        try:
            yield api
        finally:
            for client in api.clients.values():
                await client.aclose()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The app with auth, over SQLite."""
    async for opened in open_api(tmp_path):
        yield opened

"""Fixtures of the standard-handler tests: real local servers, engines that may reach them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowmonkey import EngineOptions, Flow
from flowmonkey.engine.engine import Engine
from flowmonkey.stores.memory import MemoryStore
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.testing import FakeClock, make_engine

from .servers import DemoApp, Served, serve


@pytest.fixture(scope="module")
def demo_server() -> Iterator[Served]:
    """The demo app on 127.0.0.1 (one per test module; requests are recorded on it)."""
    app = DemoApp()
    with serve(app, "127.0.0.1") as (host, port):
        yield Served(app, host, port)


@pytest.fixture
def server(demo_server: Served) -> Served:
    """The module's server with its records cleared."""
    app = demo_server.app
    app.hits.clear()
    app.requests.clear()
    app.disconnected.clear()
    app.slow_started.clear()
    return demo_server


@pytest.fixture(params=["memory", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


MakeEngine = Callable[..., Engine]


@pytest.fixture
def make(tmp_path: Path) -> MakeEngine:
    """``make(flows, handlers=(), sqlite=False, **options)``: loopback allowed by default."""

    def _make(
        flows: Iterable[Flow] = (),
        handlers: Iterable[Any] = (),
        *,
        sqlite: bool = False,
        clock: FakeClock | None = None,
        **options: Any,
    ) -> Engine:
        options.setdefault("http_allow", ("127.0.0.1", "::1"))
        store = SqliteStore(tmp_path / "fm.db") if sqlite else MemoryStore()
        return make_engine(
            handlers, flows, store=store, clock=clock, options=EngineOptions(**options)
        )

    return _make

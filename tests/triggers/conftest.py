"""Trigger fixtures: every test runs over the MemoryStore and the SqliteStore."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from flowmonkey import EngineOptions, Flow
from flowmonkey.engine.engine import Engine
from flowmonkey.stores.base import Store
from flowmonkey.stores.memory import MemoryStore
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.testing import FakeClock, make_engine

MakeEngine = Callable[..., Engine]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, not yet initialised store (the engine opens and closes it)."""
    if request.param == "memory":
        return MemoryStore()
    return SqliteStore(tmp_path / "fm.db")


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock every engine of a test shares."""
    return FakeClock()


@pytest.fixture
def make(store: Store, clock: FakeClock) -> MakeEngine:
    """``make(handlers, flows, options=None)`` -> an Engine over the test's store."""

    def _make(
        handlers: Iterable[Any] = (),
        flows: Iterable[Flow] = (),
        *,
        options: EngineOptions | None = None,
    ) -> Engine:
        return make_engine(handlers, flows, store=store, clock=clock, options=options)

    return _make

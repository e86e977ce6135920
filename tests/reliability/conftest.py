"""Reliability fixtures: every test here runs over memory, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from contract.pg_factory import drop_schema
from flowmonkey import EngineOptions, Flow
from flowmonkey.engine.engine import Engine
from flowmonkey.stores.base import Store
from flowmonkey.stores.memory import MemoryStore
from flowmonkey.stores.postgres import PostgresStore
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.testing import FakeClock, make_engine

MakeEngine = Callable[..., Engine]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, not yet initialised store (the engine opens and closes it)."""
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        yield SqliteStore(tmp_path / "fm.db")
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        schema = f"fm_reliab_{uuid.uuid4().hex[:12]}"
        try:
            yield PostgresStore(dsn, schema=schema, min_size=1, max_size=4)
        finally:
            await drop_schema(dsn, schema)


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

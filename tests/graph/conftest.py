"""Graph-feature fixtures: every test runs over MemoryStore, SqliteStore and (when a
server answers and the driver imports) PostgresStore on a throwaway schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from flowmonkey import EngineOptions, Flow
from flowmonkey.engine.engine import Engine
from flowmonkey.stores.base import Store
from flowmonkey.stores.memory import MemoryStore
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.testing import FakeClock, make_engine

try:
    from flowmonkey.stores.postgres import PostgresStore
except ImportError:  # the postgres extra is not installed
    PostgresStore = None  # type: ignore[assignment,misc]

MakeEngine = Callable[..., Engine]
OpenStore = Callable[[], Store]

_BACKENDS = [
    "memory",
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(PostgresStore is None, reason="psycopg is not installed"),
        ],
    ),
]


async def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@pytest.fixture(params=_BACKENDS)
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """``open_store()`` -> a new (uninitialised) store object over this test's backing
    data: the same MemoryStore, a new SqliteStore on the same file, or a new
    PostgresStore on the same schema. Calling it twice simulates a process restart."""
    backend = request.param
    if backend == "memory":
        memory = MemoryStore()
        yield lambda: memory
        return
    if backend == "sqlite":
        path = tmp_path / "g.db"
        yield lambda: SqliteStore(path)
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = f"fm_graph_{uuid.uuid4().hex[:12]}"
    assert PostgresStore is not None
    yield lambda: PostgresStore(dsn, schema=schema)
    await _drop_schema(dsn, schema)


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    """The test's store (not yet initialised; the engine opens and closes it)."""
    return open_store()


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock shared by every engine of a test."""
    return FakeClock()


@pytest.fixture
def make(store: Store, clock: FakeClock) -> MakeEngine:
    """``make(handlers, flows, options=None, store=None)`` -> an Engine over the test's
    store (or the given one) with the shared fake clock."""

    def _make(
        handlers: Iterable[Any] = (),
        flows: Iterable[Flow] = (),
        *,
        options: EngineOptions | None = None,
        store: Store | None = None,
    ) -> Engine:
        return make_engine(
            handlers, flows, store=store if store is not None else _store, clock=clock,
            options=options,
        )  # fmt: skip

    _store = store
    return _make


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """A SQLite file for restart tests that always need a real file."""
    return tmp_path / "restart.db"

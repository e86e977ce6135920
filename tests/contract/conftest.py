"""The ``store`` fixture: every contract test runs once per store backend.

A backend is ONE entry of ``STORE_FACTORIES``: a name, an async context manager that
yields an initialised, empty store (it gets the pytest ``request``, so it can ask for
``tmp_path`` or ``postgres_dsn``), and the pytest marks of its test ids.

PostgreSQL plugs in from ``tests/contract/pg_factory.py`` without editing this file: that
module exports ``postgres_store(request)`` (an ``asynccontextmanager`` that calls
``request.getfixturevalue("postgres_dsn")``, which skips or fails when no server answers,
and gives each test its own database or schema). When the module exists, the backend is
added here with the ``postgres`` mark.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from flowmonkey.stores.base import Store
from flowmonkey.stores.memory import MemoryStore
from flowmonkey.stores.sqlite import SqliteStore

StoreFactory = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Store]]


@asynccontextmanager
async def memory_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A fresh ``MemoryStore``."""
    store = MemoryStore()
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def sqlite_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A ``SqliteStore`` on a new file (never ``:memory:``, so WAL and files are real)."""
    tmp_path: Path = request.getfixturevalue("tmp_path")
    store = SqliteStore(tmp_path / "contract.db")
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


STORE_FACTORIES: dict[str, tuple[StoreFactory, tuple[pytest.MarkDecorator, ...]]] = {
    "memory": (memory_store, ()),
    "sqlite": (sqlite_store, ()),
}

try:
    _pg_factory = importlib.import_module("contract.pg_factory")
except ModuleNotFoundError as exc:  # the PostgreSQL backend is optional here
    if exc.name != "contract.pg_factory":
        raise
else:
    STORE_FACTORIES["postgres"] = (_pg_factory.postgres_store, (pytest.mark.postgres,))


@pytest.fixture(
    params=[pytest.param(name, marks=marks) for name, (_, marks) in STORE_FACTORIES.items()]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """An empty, initialised store of each registered backend."""
    factory, _ = STORE_FACTORIES[request.param]
    async with factory(request) as opened:
        yield opened

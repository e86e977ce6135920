"""Fixtures of the PostgreSQL-specific tests: one throwaway schema per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from flowmonkey.stores.postgres import PostgresStore


async def drop_schema(dsn: str, schema: str) -> None:
    """``DROP SCHEMA ... CASCADE`` (no error if absent)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@pytest.fixture
async def schema_names(postgres_dsn: str) -> AsyncIterator[Callable[[], str]]:
    """Hands out fresh uuid-named schemas; drops every one of them afterwards."""
    made: list[str] = []

    def new() -> str:
        name = f"fm_pgtest_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return name

    yield new
    for name in made:
        await drop_schema(postgres_dsn, name)


@pytest.fixture
def schema(schema_names: Callable[[], str]) -> str:
    """One fresh schema name for this test."""
    return schema_names()


StoreMaker = Callable[..., Awaitable[PostgresStore]]


@pytest.fixture
async def make_store(postgres_dsn: str, schema: str) -> AsyncIterator[StoreMaker]:
    """``await make_store(**options)``: an initialised store on this test's schema
    (several calls give several independent pools on the same schema)."""
    opened: list[PostgresStore] = []

    async def make(**options: Any) -> PostgresStore:
        options.setdefault("schema", schema)
        store = PostgresStore(postgres_dsn, **options)
        await store.initialize()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def raw(postgres_dsn: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A plain autocommit connection for inspecting the database."""
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        yield conn

"""The PostgreSQL backend of the contract suite (picked up by ``contract/conftest.py``).

Each test gets its own schema (``fm_contract_<uuid>``) in the test database, dropped
afterwards, so tests never share state and can run against one server in parallel.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import pytest
from psycopg import sql

from flowmonkey.stores.postgres import PostgresStore

__all__ = ["drop_schema", "postgres_store"]


async def drop_schema(dsn: str, schema: str) -> None:
    """``DROP SCHEMA ... CASCADE`` (no error if it does not exist)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@asynccontextmanager
async def postgres_store(request: pytest.FixtureRequest) -> AsyncIterator[PostgresStore]:
    """An initialised ``PostgresStore`` on a fresh schema, dropped afterwards."""
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = f"fm_contract_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(dsn, schema=schema, min_size=1, max_size=4)
    try:
        await store.initialize()
        yield store
    finally:
        await store.close()
        await drop_schema(dsn, schema)

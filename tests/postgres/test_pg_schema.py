"""Schema migrations of the PostgreSQL store: versioning, refusal, concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from contract.factories import make_execution
from flowmonkey import errors
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores import postgres_schema
from flowmonkey.stores.postgres import PostgresStore
from flowmonkey.stores.postgres_conn import connect_kwargs
from flowmonkey.stores.postgres_schema import migrate_schema, postgres_migrations

pytestmark = pytest.mark.postgres

LATEST = postgres_migrations()[-1].version


async def describe(conn: psycopg.AsyncConnection[Any], schema: str) -> dict[str, Any]:
    """Everything that defines a schema's shape, normalised for comparison."""
    queries = {
        "columns": """
            SELECT table_name, column_name, ordinal_position, data_type, is_nullable,
                   column_default IS NOT NULL, is_identity
            FROM information_schema.columns WHERE table_schema = %s
            ORDER BY table_name, ordinal_position""",
        "indexes": """
            SELECT tablename, indexname, replace(indexdef, %s, 'S')
            FROM pg_indexes WHERE schemaname = %s ORDER BY tablename, indexname""",
        "constraints": """
            SELECT c.conrelid::regclass::text, c.conname, c.contype,
                   replace(pg_get_constraintdef(c.oid), %s, 'S')
            FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE n.nspname = %s ORDER BY 1, 2""",
        "functions": """
            SELECT p.proname, pg_get_function_identity_arguments(p.oid), p.prosrc
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = %s ORDER BY 1, 2""",
        "options": """
            SELECT c.relname, c.reloptions FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY 1""",
    }
    out: dict[str, Any] = {}
    for name, query in queries.items():
        params: list[Any] = (
            [schema] if name in ("columns", "functions", "options") else [f"{schema}.", schema]
        )
        rows = await (await conn.execute(query, params)).fetchall()
        out[name] = [tuple(str(v).replace(schema, "S") for v in row) for row in rows]
    out["versions"] = [
        tuple(r)
        for r in await (
            await conn.execute(
                sql.SQL("SELECT version, name FROM {}.schema_version ORDER BY 1").format(
                    sql.Identifier(schema)
                )
            )
        ).fetchall()
    ]
    return out


async def schema_conn(dsn: str, schema: str) -> psycopg.AsyncConnection[Any]:
    kwargs = connect_kwargs(schema, connect_timeout=5, application_name="fm-test")
    return await psycopg.AsyncConnection.connect(dsn, **kwargs)


async def test_migrating_step_by_step_equals_a_fresh_schema(
    postgres_dsn: str, schema_names: Any, raw: psycopg.AsyncConnection[Any]
) -> None:
    stepwise, fresh = schema_names(), schema_names()
    migrations = postgres_migrations()
    # Stepwise: one transaction per migration, as successive releases would apply them.
    conn = await schema_conn(postgres_dsn, stepwise)
    try:
        for migration in migrations:
            reached = await migrate_schema(
                conn, stepwise, database="test", migrations=migrations, target=migration.version
            )
            assert reached == migration.version
    finally:
        await conn.close()
    # Fresh: what initialize() does on an empty schema.
    store = PostgresStore(postgres_dsn, schema=fresh)
    await store.initialize()
    await store.close()
    shape = await describe(raw, fresh)
    assert shape["columns"] and shape["indexes"] and shape["functions"]
    assert await describe(raw, stepwise) == shape
    assert [v for v, _ in shape["versions"]] == [m.version for m in migrations]


async def test_migrate_returns_the_version_and_is_idempotent(
    postgres_dsn: str, schema: str
) -> None:
    store = PostgresStore(postgres_dsn, schema=schema)
    assert await store.migrate() == LATEST
    assert await store.migrate() == LATEST
    await store.initialize()  # nothing left to do
    await store.close()


async def test_a_newer_schema_is_refused(
    postgres_dsn: str, schema: str, raw: psycopg.AsyncConnection[Any]
) -> None:
    store = PostgresStore(postgres_dsn, schema=schema)
    await store.migrate()
    await raw.execute(
        sql.SQL("INSERT INTO {}.schema_version VALUES (%s, 'future', 'now')").format(
            sql.Identifier(schema)
        ),
        [LATEST + 1],
    )
    with pytest.raises(errors.SchemaVersionError) as info:
        await store.initialize()
    message = str(info.value)
    assert f"version {LATEST + 1}" in message and "upgrade flowmonkey" in message
    with pytest.raises(errors.SchemaVersionError):
        await store.migrate()


async def test_an_older_schema_without_auto_migrate_says_how_to_migrate(
    postgres_dsn: str, schema: str, raw: psycopg.AsyncConnection[Any]
) -> None:
    url = postgres_dsn.replace("postgresql://postgres@", "postgresql://postgres:pw@")
    store = PostgresStore.from_url(f"{url}?schema={schema}", auto_migrate=False)
    with pytest.raises(errors.SchemaVersionError) as info:
        await store.initialize()
    message = str(info.value)
    assert "flowmonkey migrate --store" in message
    assert ":pw@" not in message and ":***@" in message
    # Nothing was created behind the user's back.
    row = await (
        await raw.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [schema])
    ).fetchone()
    assert row == (0,)


async def test_concurrent_initialize_is_safe(postgres_dsn: str, schema: str) -> None:
    stores = [PostgresStore(postgres_dsn, schema=schema) for _ in range(6)]
    try:
        await asyncio.gather(*(s.initialize() for s in stores))
        conn = await schema_conn(postgres_dsn, schema)
        try:
            rows = await (await conn.execute("SELECT version FROM schema_version")).fetchall()
        finally:
            await conn.close()
        assert [r[0] for r in rows] == [m.version for m in postgres_migrations()]
    finally:
        for s in stores:
            await s.close()


async def test_rows_written_before_0007_read_and_run_after_it(
    postgres_dsn: str, schema: str, raw: psycopg.AsyncConnection[Any], monkeypatch: Any
) -> None:
    # A store of the previous release: migrations up to 0006 only.
    before = [m for m in postgres_migrations() if m.version < 7]
    monkeypatch.setattr(postgres_schema, "postgres_migrations", lambda: before)
    old = PostgresStore(postgres_dsn, schema=schema)
    await old.initialize()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    parked = make_execution(
        status=ExecutionStatus.WAITING, wake_at=t0 + timedelta(days=30), context={"n": 1}
    )
    await old.create(parked)
    await old.close()
    options = await (
        await raw.execute(
            "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'executions'",
            [schema],
        )
    ).fetchone()
    assert options == (["fillfactor=80"],)
    monkeypatch.undo()

    new = PostgresStore(postgres_dsn, schema=schema)
    await new.initialize()  # migrates to 0007
    try:
        options = await (
            await raw.execute(
                "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'executions'",
                [schema],
            )
        ).fetchone()
        assert options == (["fillfactor=90"],)
        loaded = await new.get(parked.id)
        assert loaded is not None
        assert loaded.status is ExecutionStatus.WAITING and loaded.context == {"n": 1}
        assert await new.due(now=t0 + timedelta(days=31), limit=10) == [parked.id]
        got = await new.acquire(
            parked.id, owner="w", now=t0 + timedelta(days=31), lease_for=timedelta(seconds=30)
        )
        assert got.lease is not None and got.execution.wake_at == parked.wake_at
    finally:
        await new.close()

"""Schema versioning of the PostgreSQL store (on top of ``stores.migrate``).

Migrations are ``sql/postgres/NNNN_*.sql``. All of them that are pending run in ONE
transaction holding a ``pg_advisory_xact_lock`` keyed by the schema name, so several
processes calling ``initialize()`` at once serialise: the first migrates, the others then
find the schema current. DDL is transactional in PostgreSQL, so a failed migration leaves
the previous version intact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, sql

from flowmonkey import errors
from flowmonkey.stores.migrate import VERSION_TABLE_DDL, Migration, load_migrations, pending

__all__ = ["check_version", "current_version", "migrate_schema", "postgres_migrations"]


def postgres_migrations() -> list[Migration]:
    """The packaged PostgreSQL migrations, in order."""
    return load_migrations("postgres")


def _lock_key(schema: str) -> int:
    # A stable signed 64-bit key per schema: migrators of different schemas never wait on
    # each other, and the key does not depend on server-side hash functions.
    digest = hashlib.sha256(f"flowmonkey.migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def current_version(conn: AsyncConnection[Any]) -> int:
    """Highest applied version in the connection's schema; 0 when nothing is there."""
    cur = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cur.fetchone()
    if row is None or not row[0]:
        return 0
    cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def migrate_schema(
    conn: AsyncConnection[Any],
    schema: str,
    *,
    database: str,
    migrations: Sequence[Migration] | None = None,
    target: int | None = None,
) -> int:
    """Apply pending migrations (up to ``target``, default all); return the version reached.

    ``conn`` must be an autocommit connection whose ``search_path`` is ``schema``.

    Raises:
        SchemaVersionError: the schema is newer than ``migrations``.
    """
    found = list(postgres_migrations() if migrations is None else migrations)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(schema)])
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await conn.execute(VERSION_TABLE_DDL)
        version = await current_version(conn)
        for migration in pending(version, found, database=database):
            if target is not None and migration.version > target:
                break
            await conn.execute(migration.sql.encode())
            await conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (%s, %s, %s)",
                [migration.version, migration.name, datetime.now(UTC).isoformat()],
            )
            version = migration.version
    return version


async def check_version(
    conn: AsyncConnection[Any],
    schema: str,
    *,
    database: str,
    url: str,
    auto_migrate: bool,
) -> int:
    """Make sure the schema matches this code, migrating when allowed; return its version.

    Raises:
        SchemaVersionError: newer than this code, or older while ``auto_migrate`` is off.
    """
    migrations = postgres_migrations()
    latest = migrations[-1].version if migrations else 0
    version = await current_version(conn)
    todo = pending(version, migrations, database=database)  # raises when newer
    if not todo:
        return version
    if not auto_migrate:
        raise errors.SchemaVersionError(
            f"{database} has schema version {version}, but this flowmonkey needs version "
            f"{latest}. Run `flowmonkey migrate --store {url}` (or open the store with "
            "auto_migrate=True) to upgrade it.",
            details={"database_version": version, "code_version": latest},
        )
    return await migrate_schema(conn, schema, database=database, migrations=migrations)

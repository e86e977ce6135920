"""A tiny schema migration runner shared by the SQL stores.

Migrations are numbered SQL files, ``sql/<dialect>/NNNN_name.sql``, applied in order.
The applied versions are rows of a ``schema_version`` table. The runner knows no SQL
dialect and no driver: a store hands it a ``MigrationTarget`` (read the version, apply
one migration) and runs it inside whatever lock serialises migrators for that database
(SQLite: one ``BEGIN IMMEDIATE`` transaction; PostgreSQL: a transaction plus an advisory
lock), so two processes starting at once never apply a migration twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

from flowmonkey import errors

__all__ = [
    "VERSION_TABLE_DDL",
    "Migration",
    "MigrationTarget",
    "load_migrations",
    "migrate",
    "pending",
]

VERSION_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)
"""Portable DDL of the version table (valid SQLite and PostgreSQL)."""

_FILE_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str


class MigrationTarget(Protocol):
    """A database as the runner sees it (synchronous drivers)."""

    def current_version(self) -> int:
        """The highest applied version; 0 for an empty database."""
        ...

    def apply(self, migration: Migration) -> None:
        """Run ``migration.sql`` and record ``migration.version`` in ``schema_version``."""
        ...


def load_migrations(dialect: str) -> list[Migration]:
    """Read ``flowmonkey/stores/sql/<dialect>/NNNN_*.sql``, ordered by version.

    Raises ``ValueError`` when the numbering has a gap or a duplicate, which is a
    packaging bug that must fail loudly rather than skip a migration.
    """
    folder = resources.files("flowmonkey").joinpath("stores", "sql", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise ValueError(
                f"{dialect} migrations must be numbered 0001, 0002, ... without gaps; "
                f"found {migration.version:04d}_{migration.name}.sql where "
                f"{expected:04d} was expected"
            )
    return found


def pending(current: int, migrations: Sequence[Migration], *, database: str) -> list[Migration]:
    """The migrations newer than ``current``, in order.

    Raises ``SchemaVersionError`` when the database is newer than this code: running
    old code against a newer schema could corrupt data the newer code relies on.
    """
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise errors.SchemaVersionError(
            f"{database} has schema version {current}, but this flowmonkey only knows "
            f"versions up to {latest}. It was migrated by a newer flowmonkey: upgrade "
            "flowmonkey (pip install -U flowmonkey) in every process that opens it, or "
            "point this process at another database.",
            details={"database_version": current, "code_version": latest},
        )
    return [m for m in migrations if m.version > current]


def migrate(target: MigrationTarget, migrations: Sequence[Migration], *, database: str) -> int:
    """Apply every pending migration; return the resulting version.

    Call it while holding the lock that serialises migrators (see the module docstring).
    Drivers that are asyncio-only loop over ``pending`` themselves.
    """
    current = target.current_version()
    for migration in pending(current, migrations, database=database):
        target.apply(migration)
        current = migration.version
    return current

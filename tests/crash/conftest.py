"""Crash-test fixtures: a fresh database per test (SQLite file or PostgreSQL schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.support import Backend, drop_schema, new_schema, postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A SQLite file shared by worker processes, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'crash.db'}")
        return
    yield from _postgres(request)


@pytest.fixture
def pg_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A PostgreSQL schema on the test server, dropped afterwards."""
    yield from _postgres(request)


def _postgres(request: pytest.FixtureRequest) -> Iterator[Backend]:
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = new_schema()
    try:
        yield Backend("postgres", postgres_url(dsn, schema))
    finally:
        drop_schema(dsn, schema)

"""Worker fixtures: every in-process worker test runs over SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.support import Backend, drop_schema, new_schema, postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'worker.db'}")
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = new_schema()
    try:
        yield Backend("postgres", postgres_url(dsn, schema))
    finally:
        drop_schema(dsn, schema)

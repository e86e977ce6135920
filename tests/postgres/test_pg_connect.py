"""URLs, unreachable servers and error translation of the PostgreSQL store."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from flowmonkey import errors
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.stores import open_store
from flowmonkey.stores.base import Lease
from flowmonkey.stores.postgres import PostgresStore
from flowmonkey.stores.postgres_conn import parse_url, redact

pytestmark = pytest.mark.postgres

StoreMaker = Callable[..., Awaitable[PostgresStore]]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_from_url_accepts_both_schemes_and_a_schema_parameter() -> None:
    store = PostgresStore.from_url(
        "postgres://u:secret@db:5433/app?schema=tenant_1&sslmode=disable"
    )
    assert store.schema == "tenant_1"
    assert store.channel == "flowmonkey_wake_tenant_1"
    assert "schema=" not in store.dsn and "sslmode=disable" in store.dsn
    assert PostgresStore.from_url("postgresql://u@db/app").schema == "flowmonkey"
    assert isinstance(open_store("postgresql://u@db/app?schema=x"), PostgresStore)


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "postgresql://u@h/db?schema=a-b"])
def test_bad_urls_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_url(bad)


def test_redact_hides_passwords_in_urls_and_keyword_dsns() -> None:
    assert redact("postgresql://me:s3cret@h:1/db") == "postgresql://me:***@h:1/db"
    assert redact("postgresql://me@h/db?password=s3cret") == "postgresql://me@h/db?password=***"
    assert redact("host=h password='a b' user=me") == "host=h password=*** user=me"
    assert redact("postgresql://h/db") == "postgresql://h/db"


async def test_unreachable_server_is_one_clear_error_without_the_password() -> None:
    store = PostgresStore.from_url("postgresql://postgres:hunter2@127.0.0.1:1/test")
    started = time.monotonic()
    with pytest.raises(errors.StoreUnavailable) as info:
        await store.initialize()
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "postgresql://postgres:***@127.0.0.1:1/test" in message
    assert "hunter2" not in message and "hunter2" not in repr(info.value.__cause__)
    assert info.value.__cause__ is not None
    with pytest.raises(errors.StoreUnavailable):
        await store.migrate()


async def test_methods_before_initialize_raise_store_error(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn, schema="never_created")
    with pytest.raises(errors.StoreError, match="initialize"):
        await store.get("x")


async def test_duplicate_id_is_a_store_error_with_the_driver_cause(
    make_store: StoreMaker,
) -> None:
    store = await make_store()
    execution = Execution(
        id="dup", flow_id="f", flow_version="1", status=ExecutionStatus.PENDING,
        current_step_id="a", created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    await store.create(execution)
    with pytest.raises(errors.StoreError, match="already exists") as info:
        await store.create(execution)
    assert isinstance(info.value.__cause__, psycopg.errors.UniqueViolation)


async def test_a_closed_store_raises_store_error(make_store: StoreMaker) -> None:
    store = await make_store()
    await store.close()
    lease = Lease(execution_id="x", owner="w", token=1, expires_at=NOW)
    with pytest.raises(errors.StoreError, match="initialize"):
        await store.heartbeat(lease, now=NOW, lease_for=timedelta(seconds=1))

"""Helpers shared by the worker and crash tests: store backends, polling, history checks."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flowmonkey.engine.engine import Engine
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores import open_store
from flowmonkey.stores.base import ExecutionQuery, Store


@dataclass(frozen=True)
class Backend:
    """One test database: ``store()`` opens a new store object on it (one per process
    or engine, like real workers); ``url`` is what a worker subprocess is given."""

    name: str
    url: str

    def store(self, **options: Any) -> Store:
        return open_store(self.url, **options)


def new_schema() -> str:
    """A unique PostgreSQL schema name for one test."""
    return f"fm_worker_{uuid.uuid4().hex[:12]}"


def drop_schema(dsn: str, schema: str) -> None:
    """Drop a test's schema and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def postgres_url(dsn: str, schema: str) -> str:
    """The store URL of ``schema`` on the server of ``dsn``."""
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float, what: str, every: float = 0.05
) -> None:
    """Wait until ``await check()`` is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


async def statuses(store: Store) -> Counter[str]:
    """How many executions are in each status."""
    counts: Counter[str] = Counter()
    cursor = None
    while True:
        page = await store.list(ExecutionQuery(limit=500, cursor=cursor))
        counts.update(str(e.status) for e in page.items)
        if page.next_cursor is None:
            return counts
        cursor = page.next_cursor


async def all_ids(store: Store) -> list[str]:
    """Every execution id in the store."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.list(ExecutionQuery(limit=500, cursor=cursor))
        ids += [e.id for e in page.items]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def success_counts(store: Store, ids: list[str]) -> Counter[tuple[str, str]]:
    """Committed ``success`` step records per (execution, step), from the history."""
    counts: Counter[tuple[str, str]] = Counter()
    for eid in ids:
        execution = await store.get(eid)
        assert execution is not None
        for record in execution.history:
            if record.outcome == "success":
                counts[(eid, record.step_id)] += 1
    return counts


async def wait_all_done(store: Store, total: int, *, timeout: float) -> None:
    """Wait until ``total`` executions are completed."""

    async def done() -> bool:
        return (await statuses(store))[str(ExecutionStatus.COMPLETED)] >= total

    await eventually(done, timeout=timeout, what=f"{total} completed executions", every=0.1)


async def create_many(engine: Engine, flow_id: str, n: int) -> list[str]:
    """Create ``n`` executions of ``flow_id``."""
    return [(await engine.create(flow_id)).execution.id for _ in range(n)]

"""Raw-speed sanity: one execution at a time, 10 no-op steps, against raw commits.

Prints the rates (run with ``-s``); asserts only correctness, never timing, because a
shared CI machine makes timings noisy. The benchmark proper lives in ``bench/``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql

from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus, StepRecord
from flowmonkey.stores.base import StepCommit
from flowmonkey.stores.postgres import PostgresStore

pytestmark = pytest.mark.postgres

StoreMaker = Callable[..., Awaitable[PostgresStore]]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEPS = 10


async def raw_commit_rate(conn: psycopg.AsyncConnection[Any], schema: str, n: int) -> float:
    """One-row UPDATE + COMMIT transactions per second from one client (the baseline)."""
    table = sql.Identifier(schema, "raw_baseline")
    await conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v int)").format(table))
    await conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 0)").format(table))
    update = sql.SQL("UPDATE {} SET v = v + 1 WHERE id = 1").format(table)
    await conn.set_autocommit(False)
    started = time.perf_counter()
    for _ in range(n):
        await conn.execute(update)
        await conn.commit()
    elapsed = time.perf_counter() - started
    await conn.set_autocommit(True)
    return n / elapsed


async def run_flow(store: PostgresStore, ident: str) -> None:
    """What the engine does for a 10-step no-op flow: create, acquire, one commit a step."""
    now = T0
    execution = Execution(
        id=ident, flow_id="bench", flow_version="1", status=ExecutionStatus.PENDING,
        current_step_id="s0", context={"input": {"n": 1}}, created_at=now, updated_at=now,
        event_seq=1,
    )  # fmt: skip
    await store.create(execution, [Event("execution.created", ident, now, {}, 1)])
    acquired = await store.acquire(ident, owner="w", now=now, lease_for=timedelta(seconds=30))
    assert acquired.lease is not None
    current = acquired.execution
    for step in range(STEPS):
        last = step == STEPS - 1
        current = replace(
            current,
            current_step_id=None if last else f"s{step + 1}",
            step_count=step + 1,
            status=ExecutionStatus.COMPLETED if last else ExecutionStatus.RUNNING,
            event_seq=current.event_seq + 1,
        )
        record = StepRecord(
            step_id=f"s{step}", handler_type="noop", attempt=1, run_number=1,
            outcome="success", started_at=now, finished_at=now, duration_ms=0.1,
        )  # fmt: skip
        await store.commit(
            acquired.lease,
            StepCommit(
                execution=current,
                context_set={f"out{step}": orjson.dumps({"ok": True})},
                history=[record],
                events=[Event("step.completed", ident, now, {}, current.event_seq)],
            ),
        )


async def test_single_stream_commit_rate_against_raw_commits(
    make_store: StoreMaker, schema: str, raw: psycopg.AsyncConnection[Any]
) -> None:
    store = await make_store(max_size=2)
    await run_flow(store, "warmup")  # prepares statements, fills the pool
    flows = 30
    started = time.perf_counter()
    for i in range(flows):
        await run_flow(store, f"f{i}")
    elapsed = time.perf_counter() - started
    baseline = await raw_commit_rate(raw, schema, 300)
    commits = flows * STEPS / elapsed
    print(
        f"\nPostgresStore: {commits:.0f} step commits/s (10-step flows, create+acquire "
        f"included); raw UPDATE+COMMIT: {baseline:.0f}/s; ratio {commits / baseline:.2f}"
    )
    done = await store.get("f0")
    assert done is not None and done.status is ExecutionStatus.COMPLETED
    assert len(done.history) == STEPS and len(done.context) == STEPS + 1

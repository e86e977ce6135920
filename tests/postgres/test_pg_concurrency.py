"""Claiming across processes (two pools), group commits and NOTIFY wake-ups."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest

from flowmonkey import errors
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus, StepRecord
from flowmonkey.stores.base import StepCommit
from flowmonkey.stores.postgres import PostgresStore
from flowmonkey.stores.postgres_wake import PostgresWakeSignaler

pytestmark = pytest.mark.postgres

StoreMaker = Callable[..., Awaitable[PostgresStore]]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def pending(ident: str, seconds: float = 0) -> Execution:
    at = T0 + timedelta(seconds=seconds)
    return Execution(
        id=ident, flow_id="f", flow_version="1", status=ExecutionStatus.PENDING,
        current_step_id="a", context={"n": ident}, created_at=at, updated_at=at,
    )  # fmt: skip


async def test_two_pools_claiming_concurrently_claim_each_execution_once(
    make_store: StoreMaker,
) -> None:
    first = await make_store(max_size=4)
    second = await make_store(max_size=4)
    total = 200
    await asyncio.gather(*(first.create(pending(f"e{i:03}", i / 1000)) for i in range(total)))
    claimed: dict[str, list[str]] = {"a": [], "b": []}

    async def claimer(store: PostgresStore, owner: str) -> None:
        idle = 0
        while idle < 3:
            got = await store.claim(owner=owner, now=T0 + LEASE, lease_for=LEASE, limit=7)
            idle = idle + 1 if not got else 0
            for acquired in got:
                assert acquired.lease is not None and acquired.lease.owner == owner
                assert acquired.execution.status is ExecutionStatus.RUNNING
                assert acquired.execution.context == {"n": acquired.execution.id}
            claimed[owner].extend(a.execution.id for a in got)
            await asyncio.sleep(0)

    await asyncio.gather(claimer(first, "a"), claimer(second, "b"), claimer(second, "b"))
    counts = Counter(claimed["a"] + claimed["b"])
    assert len(counts) == total and set(counts.values()) == {1}
    assert claimed["a"] and claimed["b"], "both pools should have won some rows"


async def test_commit_many_commits_the_good_and_reports_the_stale(make_store: StoreMaker) -> None:
    store = await make_store()
    for i in range(4):
        await store.create(pending(f"g{i}", i))
    got = await store.claim(owner="w", now=T0, lease_for=LEASE, limit=4)
    leases = {a.execution.id: a.lease for a in got}
    stale_lease = leases["g2"]
    assert stale_lease is not None
    # Someone else takes g2 over: the worker's lease on it is now stale.
    await store.acquire("g2", owner="thief", now=T0, lease_for=LEASE, steal=True)

    def commit_of(acquired: Any, n: int) -> StepCommit:
        execution = replace(acquired.execution, step_count=n, updated_at=T0 + LEASE)
        record = StepRecord(
            step_id="a", handler_type="noop", attempt=1, run_number=1, outcome="success",
            started_at=T0, finished_at=T0, duration_ms=1.0,
        )  # fmt: skip
        return StepCommit(
            execution=replace(execution, event_seq=1),
            context_set={"out": orjson.dumps(n)},
            history=[record],
            events=[Event("step.completed", execution.id, T0, {"n": n}, 1)],
        )

    items = [(a.lease, commit_of(a, i + 1)) for i, a in enumerate(got)]
    results = await store.commit_many(items)
    by_id = {a.execution.id: r for a, r in zip(got, results, strict=True)}
    assert isinstance(by_id.pop("g2"), errors.LeaseLost)
    assert set(by_id.values()) == {None}
    for i, acquired in enumerate(got):
        stored = await store.get(acquired.execution.id)
        assert stored is not None
        if acquired.execution.id == "g2":
            assert stored.step_count == 0 and "out" not in stored.context
            assert await store.events("g2") == []
        else:
            assert stored.step_count == i + 1 and stored.context["out"] == i + 1
            assert len(stored.history) == 1 and len(await store.events(stored.id)) == 1
    # All good: one transaction, nothing reported.
    fresh = [a for a in got if a.execution.id != "g2"]
    again = [(a.lease, commit_of(a, 10)) for a in fresh]
    for _, commit in again:
        commit.events = [Event("step.completed", commit.execution.id, T0, {}, 2)]
    assert await store.commit_many(again) == [None] * len(again)


async def test_store_notifies_listeners_when_work_becomes_runnable(
    make_store: StoreMaker, postgres_dsn: str
) -> None:
    store = await make_store()
    signaler = store.wake_signaler()
    await signaler.start()
    try:
        assert await signaler.wait(0.05) == []
        await store.create(pending("n1"))
        assert await signaler.wait(5) == ["n1"]
        # An ordinary step commit does not notify (NOTIFY serialises commits).
        acquired = await store.acquire("n1", owner="w", now=T0, lease_for=LEASE)
        assert acquired.lease is not None
        running = replace(acquired.execution, step_count=1)
        await store.commit(acquired.lease, StepCommit(execution=running))
        assert await signaler.wait(0.2) == []
        # Released while runnable: other workers are told.
        await store.commit(
            acquired.lease,
            StepCommit(execution=replace(running, status=ExecutionStatus.PENDING), release=True),
        )
        assert await signaler.wait(5) == ["n1"]
        # Explicit notify from another process/connection.
        other = PostgresWakeSignaler(postgres_dsn, channel=store.channel)
        await other.notify("x1")
        await other.notify("x2")
        await other.close()
        got: list[str] = []
        while len(got) < 2:
            batch = await signaler.wait(5)
            assert batch, "timed out waiting for notifications"
            got += batch
        assert got == ["x1", "x2"]
    finally:
        await signaler.close()
        await signaler.close()


async def test_signaler_reconnects_after_losing_its_connection(
    make_store: StoreMaker, raw: psycopg.AsyncConnection[Any]
) -> None:
    store = await make_store()
    signaler = PostgresWakeSignaler(store.dsn, channel=store.channel, reconnect_min=0.05)
    await signaler.start()
    try:
        await raw.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'flowmonkey-wake' AND query = %s",
            [f'LISTEN "{store.channel}"'],
        )
        for _ in range(100):
            if signaler.reconnects:
                break
            await asyncio.sleep(0.05)
        assert signaler.reconnects >= 1
        await store.create(pending("after"))
        got: list[str] = []
        for _ in range(5):
            got += await signaler.wait(2)
            if "after" in got:
                break
        assert "after" in got
    finally:
        await signaler.close()

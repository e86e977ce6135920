"""The in-memory store's periodic queries and listings walk indexes, not every execution.

Ten thousand executions parked on a 30-day timer (with deadlines, leases and finished
ones beside them) and nothing due: each periodic query must walk a handful of index keys
(``MemoryStore.probe``), and a listing page about one page of keys. A change that goes
back to scanning the rows walks tens of thousands and fails here.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from contract.factories import make_execution
from flowmonkey.model.execution import ExecutionStatus, Token, TokenStatus
from flowmonkey.model.schedules import Schedule
from flowmonkey.stores.base import ExecutionQuery, PurgeQuery
from flowmonkey.stores.memory import MemoryStore
from flowmonkey.stores.memory_index import Probe, SortedKeys

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=11)
PARKED = 10_000
LEASE = timedelta(seconds=30)


async def _parked_store() -> MemoryStore:
    store = MemoryStore()
    for n in range(PARKED):
        created = T0 + timedelta(seconds=n * 60)
        await store.create(
            make_execution(
                id=f"ex-{n:06d}",
                flow_id=f"flow-{n % 10}",
                tenant_id=f"tenant-{n % 20}",
                correlation_id=f"corr-{n // 10}",
                status=ExecutionStatus.WAITING,
                created_at=created,
                updated_at=created,
                wake_at=created + timedelta(days=30),
                deadline_at=created + timedelta(days=40) if n % 3 == 0 else None,
                tokens=[
                    Token(
                        id="t0",
                        step_id="wait",
                        status=TokenStatus.WAITING,
                        wait_deadline_at=created + timedelta(days=35),
                    )
                ],
            )
        )
    for n in range(100):  # finished recently: not purgeable, not due
        created = NOW - timedelta(minutes=n + 1)
        await store.create(
            make_execution(
                id=f"done-{n:03d}",
                status=ExecutionStatus.COMPLETED,
                created_at=created,
                updated_at=created,
                finished_at=created,
            )
        )
    for n in range(100):  # pending but leased to a live worker (start=False)
        await store.create(make_execution(id=f"held-{n:03d}", created_at=T0))
        await store.acquire(f"held-{n:03d}", owner="x", now=NOW, lease_for=LEASE, start=False)
    return store


@pytest.fixture
async def store() -> MemoryStore:
    return await _parked_store()


async def _walked(store: MemoryStore, query: object) -> int:
    before = store.probe.visited
    await query  # type: ignore[misc]
    return store.probe.visited - before


async def test_periodic_queries_walk_a_handful_of_keys(store: MemoryStore) -> None:
    # A running execution whose lease is still live: stale and claim must not walk past it.
    leased = await store.acquire("ex-000000", owner="w", now=NOW, lease_for=LEASE)
    assert leased.lease is not None
    assert await store.due(now=NOW, limit=100) == []
    assert await store.claim(owner="w", now=NOW, lease_for=LEASE, limit=10) == []
    assert await store.stale(now=NOW, updated_before=NOW - LEASE, limit=10) == []
    assert await store.runnable_by_flow(now=NOW) == {}
    assert await store.claim_schedules(owner="w", now=NOW, lease_for=LEASE, limit=10) == []
    for query in (
        store.due(now=NOW, limit=100),
        store.claim(owner="w", now=NOW, lease_for=LEASE, limit=10),
        store.stale(now=NOW, updated_before=NOW - LEASE, limit=10),
        store.runnable_by_flow(now=NOW),
        store.claim_schedules(owner="w", now=NOW, lease_for=LEASE, limit=10),
        store.next_schedule_time(),
        store.purge(PurgeQuery(older_than=NOW - timedelta(days=30), now=NOW, limit=100)),
    ):
        assert await _walked(store, query) <= 5


async def test_due_work_is_what_is_walked(store: MemoryStore) -> None:
    # Move the clock past the first 100 wakes: due walks those 100 and one more.
    later = T0 + timedelta(days=30, seconds=99 * 60)
    before = store.probe.visited
    due = await store.due(now=later, limit=1000)
    assert due == [f"ex-{n:06d}" for n in range(100)]
    assert store.probe.visited - before == 101
    before = store.probe.visited
    claimed = await store.claim(owner="w", now=later, lease_for=LEASE, limit=1000)
    # The woken ones, and the pending ones whose lease has lapsed by now.
    held = {f"held-{n:03d}" for n in range(100)}
    assert {a.execution.id for a in claimed} == set(due) | held
    assert store.probe.visited - before == 201
    # Claimed: leased and running now, so no longer due, nor claimable.
    assert await store.due(now=later, limit=1000) == []
    assert await store.claim(owner="w", now=later, lease_for=LEASE, limit=10) == []
    # Their leases lapse: the pending ones, running since the claim, are stale; all are
    # claimable again.
    lapsed = later + LEASE
    assert set(await store.stale(now=lapsed, updated_before=T0, limit=1000)) == held
    again = await store.claim(owner="v", now=lapsed, lease_for=LEASE, limit=1000)
    assert {a.execution.id for a in again} == set(due) | held


@pytest.mark.parametrize(
    "query",
    [
        ExecutionQuery(limit=50),
        ExecutionQuery(status=[ExecutionStatus.WAITING], limit=50),
        ExecutionQuery(status=[ExecutionStatus.WAITING, ExecutionStatus.COMPLETED], limit=50),
        ExecutionQuery(flow_id="flow-3", limit=50),
        ExecutionQuery(tenant_id="tenant-7", limit=50),
        ExecutionQuery(tenant_id="tenant-7", flow_id="flow-7", limit=50),
        ExecutionQuery(correlation_id="corr-42", limit=50),
        ExecutionQuery(created_before=T0 + timedelta(days=3), limit=50),
    ],
)
async def test_a_listing_page_walks_about_a_page(store: MemoryStore, query: ExecutionQuery) -> None:
    before = store.probe.visited
    page = await store.list(query)
    walked = store.probe.visited - before
    assert page.items
    assert walked <= 2 * (query.limit + 1) + 5  # two statuses merged: a page of each
    if page.next_cursor is not None:
        second = await store.list(
            ExecutionQuery(
                status=query.status,
                flow_id=query.flow_id,
                tenant_id=query.tenant_id,
                created_before=query.created_before,
                cursor=page.next_cursor,
                limit=query.limit,
            )
        )
        first_ids = {e.id for e in page.items}
        assert not first_ids & {e.id for e in second.items}
        assert (second.items[0].created_at, second.items[0].id) < (
            page.items[-1].created_at,
            page.items[-1].id,
        )


async def test_schedules_are_walked_by_next_fire_time() -> None:
    store = MemoryStore()
    for n in range(1000):
        await store.create_schedule(
            Schedule(
                id=f"s-{n:04d}",
                flow_id="flow",
                cron="0 * * * *",
                next_fire_at=NOW + timedelta(minutes=n - 2),
                created_at=T0,
                updated_at=T0,
            )
        )
    before = store.probe.visited
    claimed = await store.claim_schedules(owner="w", now=NOW, lease_for=LEASE, limit=10)
    assert [s.id for s in claimed] == ["s-0000", "s-0001", "s-0002"]
    assert store.probe.visited - before == 4
    assert await store.next_schedule_time() == NOW - timedelta(minutes=2)


def test_sorted_keys_match_a_sorted_list() -> None:
    rng = random.Random(7)
    keys = SortedKeys(Probe())
    model: set[tuple[int, str]] = set()
    for _ in range(20_000):
        key = (rng.randrange(3000), f"k{rng.randrange(5)}")
        if key in model and rng.random() < 0.6:
            keys.discard(key)
            model.discard(key)
        elif key not in model:
            keys.add(key)
            model.add(key)
    ordered = sorted(model)
    assert list(keys.ascending()) == ordered
    assert list(keys.descending()) == ordered[::-1]
    assert len(keys) == len(ordered)
    for bound in [(-1, ""), (1500, "k2"), (1500, ""), (5000, "")]:
        assert list(keys.ascending(bound)) == [k for k in ordered if k > bound]
        assert list(keys.descending(bound)) == [k for k in ordered if k < bound][::-1]

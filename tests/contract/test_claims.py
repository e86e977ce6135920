"""Contract: claim (the worker's queue), due (the scheduler) and stale (the reaper)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from typing import Any

from contract.factories import LEASE, T0, at, make_execution, started, step
from flowmonkey.model.execution import Execution, ExecutionStatus, Token, TokenStatus
from flowmonkey.stores.base import Store

NOW = at(1000)


async def create_all(store: Store, *executions: Execution) -> None:
    for execution in executions:
        await store.create(execution)


def waiting(*, wake_at: datetime | None = None, **fields: Any) -> Execution:
    """A waiting execution."""
    return make_execution(status=ExecutionStatus.WAITING, wake_at=wake_at, **fields)


async def claimed_ids(
    store: Store, *, owner: str = "w", now: datetime = NOW, limit: int = 100
) -> list[str]:
    """Ids of what one claim returns."""
    got = await store.claim(owner=owner, now=now, lease_for=LEASE, limit=limit)
    return [a.execution.id for a in got]


async def test_claim_picks_runnable_executions_oldest_first(store: Store) -> None:
    pending = make_execution(id="pending", created_at=at(3))
    due = waiting(id="due", wake_at=NOW, created_at=at(1))
    future = waiting(id="future", wake_at=at(2000), created_at=at(0))
    no_wake = waiting(id="no-wake", created_at=at(0))
    done = make_execution(id="done", status=ExecutionStatus.COMPLETED, created_at=at(0))
    await create_all(store, pending, due, future, no_wake, done)
    # Running with an expired lease (its worker died) and with a live one.
    _crashed, _ = await started(store, make_execution(id="crashed", created_at=at(2)), now=T0)
    _live, _ = await started(store, make_execution(id="live", created_at=at(0)), now=NOW)
    assert await claimed_ids(store) == ["due", "crashed", "pending"]
    # Now all of them are leased.
    assert await claimed_ids(store, owner="w2") == []


async def test_claim_of_flows_takes_only_those_flow_versions(store: Store) -> None:
    mine = make_execution(id="mine", flow_id="orders", created_at=at(1))
    other_version = make_execution(
        id="other-version", flow_id="orders", flow_version="2.0.0", created_at=at(0)
    )
    other_flow = make_execution(id="other-flow", flow_id="refunds", created_at=at(0))
    due = waiting(id="due", flow_id="orders", wake_at=NOW, created_at=at(2))
    await create_all(store, mine, other_version, other_flow, due)
    await started(store, make_execution(id="crashed", flow_id="refunds", created_at=at(3)),
                  now=T0)  # fmt: skip
    # Nothing to run: claims nothing (and does not take the others' work).
    assert await store.claim(owner="w", now=NOW, lease_for=LEASE, limit=10, flows=[]) == []
    got = await store.claim(
        owner="w", now=NOW, lease_for=LEASE, limit=10, flows=[("orders", "1.0.0")]
    )
    assert [a.execution.id for a in got] == ["mine", "due"]
    got = await store.claim(
        owner="w2", now=NOW, lease_for=LEASE, limit=10,
        flows={("refunds", "1.0.0"), ("orders", "9.9.9")},
    )  # fmt: skip
    assert [a.execution.id for a in got] == ["other-flow", "crashed"]
    assert [a.recovered for a in got] == [False, True]
    # The rest is still there for anyone.
    assert await claimed_ids(store, owner="w3") == ["other-version"]


async def test_runnable_by_flow_counts_what_claim_would_take(store: Store) -> None:
    await create_all(
        store,
        make_execution(id="a1", flow_id="a"),
        make_execution(id="a2", flow_id="a", created_at=at(1)),
        make_execution(id="a-v2", flow_id="a", flow_version="2.0.0"),
        waiting(id="b-due", flow_id="b", wake_at=NOW),
        waiting(id="b-later", flow_id="b", wake_at=at(5000)),
        make_execution(id="c-done", flow_id="c", status=ExecutionStatus.COMPLETED),
    )
    await started(store, make_execution(id="b-crashed", flow_id="b"), now=T0)
    await started(store, make_execution(id="c-live", flow_id="c"), now=NOW)
    assert await store.runnable_by_flow(now=NOW) == {
        ("a", "1.0.0"): 2, ("a", "2.0.0"): 1, ("b", "1.0.0"): 2,
    }  # fmt: skip
    await store.claim(owner="w", now=NOW, lease_for=LEASE, limit=10, flows=[("a", "1.0.0")])
    assert await store.runnable_by_flow(now=NOW) == {("a", "2.0.0"): 1, ("b", "1.0.0"): 2}


async def test_claim_grants_leases_like_acquire(store: Store) -> None:
    execution = make_execution(id="p")
    crashed = make_execution(id="c", created_at=at(1))
    await create_all(store, execution)
    await started(store, crashed, owner="dead", now=T0)
    got = await store.claim(owner="w", now=NOW, lease_for=LEASE, limit=10)
    assert [a.execution.id for a in got] == ["p", "c"]
    fresh, recovered = got
    assert fresh.lease is not None and recovered.lease is not None
    assert fresh.lease.owner == "w"
    assert fresh.lease.expires_at == NOW + LEASE
    assert fresh.execution.status is ExecutionStatus.RUNNING
    assert fresh.execution.started_at == NOW
    assert not fresh.recovered
    assert recovered.recovered
    stored = await store.get("p")
    assert stored is not None
    assert stored.status is ExecutionStatus.RUNNING
    # The claimed lease fences like any other.
    await store.commit(fresh.lease, step(replace(fresh.execution, step_count=1)))


async def test_claim_skips_due_waiting_with_a_live_lease(store: Store) -> None:
    execution = make_execution(id="p")
    await store.create(execution)
    # E.g. a signal being applied to it right now.
    due = waiting(id="w", wake_at=T0)
    await store.create(due)
    await store.acquire("w", owner="other", now=NOW, lease_for=LEASE)
    assert await claimed_ids(store) == ["p"]


async def test_claim_ignores_running_without_a_lease(store: Store) -> None:
    # Interpretation: "running whose lease expired" excludes a running execution whose
    # lease was released; the reaper (``stale``) handles those.
    execution, lease = await started(store, now=T0)
    await store.release(lease)
    assert await claimed_ids(store) == []
    assert await store.stale(now=NOW, updated_before=NOW, limit=10) == [execution.id]


async def test_claim_limit(store: Store) -> None:
    await create_all(store, *(make_execution(id=f"e{i}", created_at=at(i)) for i in range(5)))
    assert await claimed_ids(store, limit=2) == ["e0", "e1"]
    assert await claimed_ids(store, limit=2, owner="w2") == ["e2", "e3"]
    assert await claimed_ids(store, limit=0, owner="w3") == []
    assert await claimed_ids(store, limit=10, owner="w3") == ["e4"]


async def test_claim_orders_ties_by_id(store: Store) -> None:
    await create_all(store, *(make_execution(id=i, created_at=T0) for i in ("b", "c", "a")))
    assert await claimed_ids(store) == ["a", "b", "c"]


async def test_concurrent_claimers_never_share_an_execution(store: Store) -> None:
    ids = [f"e{i:02d}" for i in range(30)]
    await create_all(store, *(make_execution(id=i, created_at=at(n)) for n, i in enumerate(ids)))
    results = await asyncio.gather(
        *(store.claim(owner=f"w{n}", now=NOW, lease_for=LEASE, limit=4) for n in range(10))
    )
    got = [a.execution.id for batch in results for a in batch]
    assert len(got) == len(set(got))
    assert sorted(got) == ids


# -- due --------------------------------------------------------------------------------


async def test_due_finds_wakes_deadlines_and_wait_deadlines(store: Store) -> None:
    wake = waiting(id="wake", wake_at=at(10))
    token_deadline = waiting(
        id="wait-deadline",
        tokens=[
            Token(id="t0", step_id="s", status=TokenStatus.WAITING, wait_deadline_at=at(30)),
            Token(id="t1", step_id="s", status=TokenStatus.WAITING, wait_deadline_at=at(5000)),
        ],
    )
    deadline = make_execution(id="deadline", deadline_at=at(20))
    future = waiting(id="future", wake_at=at(5000), deadline_at=at(5000))
    done_token = waiting(
        id="done-token",
        tokens=[Token(id="t0", step_id="s", status=TokenStatus.DONE, wait_deadline_at=at(1))],
    )
    terminal = make_execution(id="terminal", status=ExecutionStatus.FAILED, deadline_at=at(1))
    running_wake = make_execution(id="running-wake", status=ExecutionStatus.RUNNING, wake_at=at(1))
    await create_all(
        store, wake, token_deadline, deadline, future, done_token, terminal, running_wake
    )
    # Ordered by the time the work became due.
    assert await store.due(now=NOW, limit=100) == ["wake", "deadline", "wait-deadline"]
    assert await store.due(now=NOW, limit=2) == ["wake", "deadline"]
    assert await store.due(now=at(15), limit=100) == ["wake"]
    assert await store.due(now=at(1), limit=100) == []


async def test_due_skips_live_leases(store: Store) -> None:
    _execution, lease = await started(store, make_execution(id="d", deadline_at=at(10)), now=T0)
    assert await store.due(now=at(20), limit=10) == []  # leased until at(30)
    assert await store.due(now=at(30), limit=10) == ["d"]  # expired
    await store.release(lease)
    assert await store.due(now=at(20), limit=10) == ["d"]


async def test_due_uses_the_committed_tokens(store: Store) -> None:
    execution, lease = await started(store, now=T0)
    parked = replace(
        execution,
        status=ExecutionStatus.WAITING,
        tokens=[Token(id="t0", step_id="s", status=TokenStatus.WAITING, wait_deadline_at=at(50))],
    )
    await store.commit(lease, step(parked, release=True))
    assert await store.due(now=at(49), limit=10) == []
    assert await store.due(now=at(50), limit=10) == [execution.id]


# -- stale ------------------------------------------------------------------------------


async def test_stale_finds_abandoned_running_executions(store: Store) -> None:
    _expired, _ = await started(store, make_execution(id="expired"), now=T0)
    _live, _ = await started(store, make_execution(id="live"), now=NOW)
    quiet, quiet_lease = await started(store, make_execution(id="quiet"), now=T0)
    await store.commit(quiet_lease, step(replace(quiet, updated_at=at(5)), release=True))
    recent, recent_lease = await started(store, make_execution(id="recent"), now=T0)
    await store.commit(recent_lease, step(replace(recent, updated_at=at(900)), release=True))
    await create_all(store, make_execution(id="pending"), waiting(id="waiting", wake_at=T0))
    found = await store.stale(now=NOW, updated_before=at(600), limit=10)
    assert sorted(found) == ["expired", "quiet"]
    assert await store.stale(now=NOW, updated_before=at(600), limit=1) == [found[0]]
    assert await store.stale(now=at(10), updated_before=at(1), limit=10) == []

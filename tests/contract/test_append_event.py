"""Contract: ``append_event`` (an event written outside any step, e.g. ``idempotency.hit``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from contract.factories import LEASE, T0, at, event, make_execution, started, step
from flowmonkey import errors
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores.base import Store

HIT = {"execution_id": "x", "idempotency_key": "k"}


async def test_appends_to_a_finished_execution_after_its_last_event(store: Store) -> None:
    execution, lease = await started(store, make_execution(tenant_id="acme"))
    done = replace(execution, status=ExecutionStatus.COMPLETED, event_seq=2)
    await store.commit(lease, step(done, events=[event(done.id, 1), event(done.id, 2)]))
    got = await store.append_event(done.id, "idempotency.hit", HIT, at=at(5), now=at(5))
    assert got is not None
    assert (got.type, got.sequence, got.tenant_id, got.timestamp) == (
        "idempotency.hit", 3, "acme", at(5)
    )  # fmt: skip
    logged = await store.events(done.id)
    assert [e.sequence for e in logged] == [1, 2, 3]
    assert logged[-1] == got
    assert logged[-1].data == HIT
    stored = await store.get(done.id)
    assert stored is not None and stored.event_seq == 3
    again = await store.append_event(done.id, "idempotency.hit", HIT, at=at(6), now=at(6))
    assert again is not None and again.sequence == 4


async def test_an_unleased_execution_continues_its_numbering_after_the_append(
    store: Store,
) -> None:
    execution = make_execution(event_seq=1)
    await store.create(execution, [event(execution.id, 1, "execution.created")])
    got = await store.append_event(execution.id, "idempotency.hit", HIT, at=at(1), now=at(1))
    assert got is not None and got.sequence == 2
    acquired = await store.acquire(execution.id, owner="w", now=at(2), lease_for=LEASE)
    assert acquired.lease is not None
    assert acquired.execution.event_seq == 2  # the next holder numbers after it
    following = replace(acquired.execution, event_seq=3)
    await store.commit(acquired.lease, step(following, events=[event(execution.id, 3)]))
    assert [e.sequence for e in await store.events(execution.id)] == [1, 2, 3]


async def test_a_live_lease_is_left_alone(store: Store) -> None:
    execution, lease = await started(store, now=T0)
    got = await store.append_event(execution.id, "idempotency.hit", HIT, at=T0, now=T0)
    assert got is None
    assert await store.events(execution.id) == []
    # The holder is not disturbed.
    await store.commit(lease, step(replace(execution, event_seq=1),
                                   events=[event(execution.id, 1)]))  # fmt: skip
    assert [e.sequence for e in await store.events(execution.id)] == [1]


async def test_an_expired_lease_is_fenced(store: Store) -> None:
    execution, lease = await started(store, now=T0)
    later = T0 + LEASE * 2
    got = await store.append_event(execution.id, "idempotency.hit", HIT, at=later, now=later)
    assert got is not None and got.sequence == 1
    # The stalled holder would have numbered its next event 1 as well: it is fenced.
    with pytest.raises(errors.LeaseLost):
        await store.commit(
            lease, step(replace(execution, event_seq=1), events=[event(execution.id, 1)])
        )
    assert [e.type for e in await store.events(execution.id)] == ["idempotency.hit"]
    # The execution is still recoverable by anyone (running, expired lease).
    claimed = await store.claim(owner="w2", now=later, lease_for=LEASE, limit=10)
    assert [(a.execution.id, a.recovered) for a in claimed] == [(execution.id, True)]


async def test_unknown_execution(store: Store) -> None:
    with pytest.raises(errors.ExecutionNotFound):
        await store.append_event("missing", "idempotency.hit", HIT, at=T0, now=T0)

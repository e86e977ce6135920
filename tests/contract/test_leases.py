"""Contract: acquire, heartbeat, release, checkpoints (the lease rules)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from contract.factories import LEASE, T0, at, make_execution, started, step
from flowmonkey import errors
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores.base import Store


async def test_acquire_pending_starts_it(store: Store) -> None:
    execution = make_execution()
    await store.create(execution)
    acquired = await store.acquire(execution.id, owner="w1", now=at(5), lease_for=LEASE)
    assert acquired.lease is not None
    assert acquired.lease.execution_id == execution.id
    assert acquired.lease.owner == "w1"
    assert acquired.lease.expires_at == at(5) + LEASE
    assert not acquired.recovered
    assert acquired.execution.status is ExecutionStatus.RUNNING
    assert acquired.execution.started_at == at(5)
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.status is ExecutionStatus.RUNNING
    assert stored.started_at == at(5)


async def test_acquire_keeps_an_existing_started_at(store: Store) -> None:
    execution = make_execution(started_at=at(1))
    await store.create(execution)
    acquired = await store.acquire(execution.id, owner="w1", now=at(5), lease_for=LEASE)
    assert acquired.execution.started_at == at(1)


async def test_acquire_returns_history_and_context(store: Store) -> None:
    execution = make_execution(context={"a": 1})
    await store.create(execution)
    acquired = await store.acquire(execution.id, owner="w1", now=T0, lease_for=LEASE)
    assert acquired.execution.context == {"a": 1}
    assert acquired.execution.history == []


async def test_acquire_missing_raises(store: Store) -> None:
    with pytest.raises(errors.ExecutionNotFound):
        await store.acquire("missing", owner="w1", now=T0, lease_for=LEASE)


async def test_busy_for_another_owner(store: Store) -> None:
    execution, lease = await started(store)
    acquired = await store.acquire(execution.id, owner="w2", now=at(10), lease_for=LEASE)
    assert acquired.lease is None
    assert acquired.execution.id == execution.id
    # The holder's lease is untouched: it can still commit.
    await store.commit(lease, step(execution))


async def test_same_owner_reacquires_with_a_new_token(store: Store) -> None:
    execution, lease = await started(store)
    again = await store.acquire(execution.id, owner="w1", now=at(10), lease_for=LEASE)
    assert again.lease is not None
    assert again.lease.token > lease.token
    assert not again.recovered
    with pytest.raises(errors.LeaseLost):
        await store.commit(lease, step(execution))


async def test_expired_lease_can_be_taken_and_fences_the_old_holder(store: Store) -> None:
    execution, lease = await started(store)
    later = lease.expires_at
    taken = await store.acquire(execution.id, owner="w2", now=later, lease_for=LEASE)
    assert taken.lease is not None
    assert taken.lease.owner == "w2"
    assert taken.lease.token > lease.token
    assert taken.recovered  # it was running under another owner's expired lease
    with pytest.raises(errors.LeaseLost):
        await store.commit(lease, step(execution))


async def test_steal_takes_a_live_lease(store: Store) -> None:
    execution, lease = await started(store)
    stolen = await store.acquire(execution.id, owner="w2", now=at(1), lease_for=LEASE, steal=True)
    assert stolen.lease is not None
    assert stolen.lease.token > lease.token
    assert stolen.recovered
    with pytest.raises(errors.LeaseLost):
        await store.heartbeat(lease, now=at(2), lease_for=LEASE)


async def test_terminal_execution_gets_no_lease(store: Store) -> None:
    for status in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED):
        execution = make_execution(status=status, finished_at=at(1))
        await store.create(execution)
        acquired = await store.acquire(
            execution.id, owner="w1", now=T0, lease_for=LEASE, steal=True
        )
        assert acquired.lease is None
        assert acquired.execution == execution


async def test_failed_true_leases_a_failed_execution_only(store: Store) -> None:
    failed = make_execution(status=ExecutionStatus.FAILED, finished_at=at(1))
    await store.create(failed)
    acquired = await store.acquire(
        failed.id, owner="w1", now=T0, lease_for=LEASE, start=False, failed=True
    )
    assert acquired.lease is not None
    assert acquired.execution.status is ExecutionStatus.FAILED  # start=False: unchanged
    other = await store.acquire(failed.id, owner="w2", now=T0, lease_for=LEASE, failed=True)
    assert other.lease is None  # a live lease still excludes others
    for status in (ExecutionStatus.COMPLETED, ExecutionStatus.CANCELLED):
        execution = make_execution(status=status, finished_at=at(1))
        await store.create(execution)
        refused = await store.acquire(
            execution.id, owner="w1", now=T0, lease_for=LEASE, failed=True, steal=True
        )
        assert refused.lease is None


async def test_tokens_strictly_increase(store: Store) -> None:
    execution = make_execution()
    await store.create(execution)
    tokens = []
    for i, owner in enumerate(["a", "b", "b", "c", "a"]):
        acquired = await store.acquire(execution.id, owner=owner, now=at(i * 100), lease_for=LEASE)
        assert acquired.lease is not None
        tokens.append(acquired.lease.token)
    assert tokens == sorted(set(tokens))


async def test_heartbeat_extends_the_lease(store: Store) -> None:
    execution, lease = await started(store)
    extended = await store.heartbeat(lease, now=at(20), lease_for=LEASE)
    assert extended.expires_at == at(20) + LEASE
    assert extended.token == lease.token
    # Past the original expiry, but inside the extension: still busy for others.
    busy = await store.acquire(execution.id, owner="w2", now=at(40), lease_for=LEASE)
    assert busy.lease is None
    await store.commit(extended, step(execution))


async def test_heartbeat_after_takeover_or_release_is_lease_lost(store: Store) -> None:
    execution, lease = await started(store)
    await store.acquire(execution.id, owner="w2", now=at(31), lease_for=LEASE)
    with pytest.raises(errors.LeaseLost):
        await store.heartbeat(lease, now=at(32), lease_for=LEASE)

    _other, other_lease = await started(store)
    await store.release(other_lease)
    with pytest.raises(errors.LeaseLost):
        await store.heartbeat(other_lease, now=at(1), lease_for=LEASE)


async def test_release_frees_the_execution(store: Store) -> None:
    execution, lease = await started(store)
    await store.release(lease)
    await store.release(lease)  # idempotent
    acquired = await store.acquire(execution.id, owner="w2", now=at(1), lease_for=LEASE)
    assert acquired.lease is not None
    assert not acquired.recovered  # released, not crashed
    # Releasing the old lease again must not drop the new holder's lease.
    await store.release(lease)
    busy = await store.acquire(execution.id, owner="w3", now=at(2), lease_for=LEASE)
    assert busy.lease is None
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.status is ExecutionStatus.RUNNING  # release changes nothing else


async def test_commit_after_release_is_lease_lost(store: Store) -> None:
    execution, lease = await started(store)
    await store.release(lease)
    with pytest.raises(errors.LeaseLost):
        await store.commit(lease, step(replace(execution, step_count=5)))
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.step_count == 0


async def test_checkpoint_is_saved_and_fenced(store: Store) -> None:
    execution, lease = await started(store)
    checkpoint = {"step_id": "start", "data": {"cursor": "p2", "items": [1, 2]}}
    await store.save_checkpoint(lease, checkpoint)
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.checkpoint == checkpoint
    await store.save_checkpoint(lease, None)
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.checkpoint is None

    await store.acquire(execution.id, owner="w2", now=at(60), lease_for=LEASE)
    with pytest.raises(errors.LeaseLost):
        await store.save_checkpoint(lease, checkpoint)
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.checkpoint is None


async def test_lease_operations_on_a_missing_execution(store: Store) -> None:
    _execution, lease = await started(store)
    ghost = replace(lease, execution_id="ghost")
    with pytest.raises((errors.ExecutionNotFound, errors.LeaseLost)):
        await store.heartbeat(ghost, now=at(1), lease_for=LEASE)
    await store.release(ghost)  # no error

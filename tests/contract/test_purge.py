"""Contract: ``purge`` (retention) removes old finished executions, in batches, and keeps
what must be kept: live executions, recent ones, children of a kept parent, and
executions whose idempotency key is still valid."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from contract.factories import (
    LEASE,
    T0,
    at,
    event,
    make_execution,
    resume_token,
    step,
    step_record,
    task,
)
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.stores.base import PurgeBatch, PurgeQuery, Store

COMPLETED = ExecutionStatus.COMPLETED
FAILED = ExecutionStatus.FAILED
CANCELLED = ExecutionStatus.CANCELLED
CUTOFF = at(1000)
ROWS_PER_FINISHED = 7
"""What ``finished`` stores: the execution, 1 context key, 2 events, 1 history record,
1 resume token, 1 task."""


async def finished(
    store: Store,
    ident: str,
    *,
    status: ExecutionStatus = COMPLETED,
    created: datetime = T0,
    finished_at: datetime = at(10),
    **fields: Any,
) -> Execution:
    """An execution that ran one step (owning a row of every kind) and ended."""
    await store.create(
        make_execution(id=ident, created_at=created, context={"a": 1}, **fields),
        [event(ident, 1)],
    )
    acquired = await store.acquire(ident, owner="w", now=created, lease_for=LEASE)
    assert acquired.lease is not None
    execution = acquired.execution
    execution.status = status
    execution.updated_at = finished_at
    execution.event_seq = 2
    await store.commit(
        acquired.lease,
        step(execution, history=[step_record()], events=[event(ident, 2)],
             resume_tokens=[resume_token(ident)], tasks=[task(ident, id=f"task-{ident}")],
             release=True),
    )  # fmt: skip
    return execution


async def purge_all(store: Store, **fields: Any) -> tuple[int, int, int]:
    """Run a whole pass; ``(executions, rows, batches)``."""
    values: dict[str, Any] = {"older_than": CUTOFF, "now": CUTOFF}
    values.update(fields)
    executions = rows = batches = 0
    cursor = None
    while True:
        batch: PurgeBatch = await store.purge(PurgeQuery(**values, cursor=cursor))
        executions += batch.executions
        rows += batch.rows
        batches += 1
        assert batches < 100, "a purge pass must end"
        if batch.next_cursor is None:
            return executions, rows, batches
        cursor = batch.next_cursor


async def present(store: Store, *ids: str) -> set[str]:
    return {i for i in ids if await store.get(i) is not None}


async def test_purge_removes_an_old_finished_execution_and_all_it_owns(store: Store) -> None:
    old = await finished(store, "old")
    await finished(store, "recent", finished_at=at(2000), created=at(1500))
    await store.create(make_execution(id="live", status=ExecutionStatus.WAITING))
    assert len(await store.events(old.id)) == 2
    assert await purge_all(store) == (1, ROWS_PER_FINISHED, 1)
    assert await present(store, "old", "recent", "live") == {"recent", "live"}
    assert await store.events(old.id) == []
    assert await store.get_task("task-old") is None
    assert await store.get_task("task-recent") is not None


async def test_resume_tokens_of_a_purged_execution_are_gone(store: Store) -> None:
    await store.create(make_execution(id="x", context={}))
    acquired = await store.acquire("x", owner="w", now=T0, lease_for=LEASE)
    assert acquired.lease is not None
    execution = acquired.execution
    execution.status = COMPLETED
    execution.updated_at = at(5)
    record = resume_token("x", "hash-x")
    await store.commit(acquired.lease, step(execution, resume_tokens=[record], release=True))
    assert await store.get_resume_token("hash-x") is not None
    await purge_all(store)
    assert await store.get_resume_token("hash-x") is None


async def test_finished_recently_is_kept_even_if_created_long_ago(store: Store) -> None:
    await finished(store, "long", created=T0, finished_at=at(1500))
    assert await purge_all(store) == (0, 0, 1)
    assert await present(store, "long") == {"long"}


async def test_status_flow_and_excluded_flow_filters(store: Store) -> None:
    for ident, status, flow in [("c1", COMPLETED, "f1"), ("x1", FAILED, "f1"),
                                ("k1", CANCELLED, "f1"), ("c2", COMPLETED, "f2"),
                                ("x2", FAILED, "f2")]:  # fmt: skip
        await finished(store, ident, status=status, flow_id=flow)
    assert (await purge_all(store, status=[FAILED]))[0] == 2
    assert await present(store, "c1", "x1", "k1", "c2", "x2") == {"c1", "k1", "c2"}
    assert (await purge_all(store, flow_id="f2"))[0] == 1
    assert await present(store, "c1", "k1", "c2") == {"c1", "k1"}
    assert (await purge_all(store, exclude_flow_ids=["f1"]))[0] == 0
    assert (await purge_all(store, status=[CANCELLED, COMPLETED]))[0] == 2
    assert await present(store, "c1", "k1") == set()


async def test_dry_run_counts_and_changes_nothing(store: Store) -> None:
    await finished(store, "a")
    await finished(store, "b", status=FAILED)
    assert await purge_all(store, dry_run=True) == (2, 0, 1)
    assert await present(store, "a", "b") == {"a", "b"}


async def test_children_of_a_kept_parent_are_kept(store: Store) -> None:
    await store.create(make_execution(id="parent", status=ExecutionStatus.WAITING))
    await finished(store, "child", parent_execution_id="parent")
    assert await purge_all(store) == (0, 0, 1)
    assert await present(store, "parent", "child") == {"parent", "child"}


async def test_a_finished_tree_is_purged_whole(store: Store) -> None:
    await finished(store, "root")
    await finished(store, "kid", parent_execution_id="root", status=FAILED, flow_id="sub")
    await finished(store, "grandkid", parent_execution_id="kid", finished_at=at(3000))
    executions, rows, _ = await purge_all(store, status=[COMPLETED], flow_id="flow")
    assert (executions, rows) == (3, 3 * ROWS_PER_FINISHED)
    assert await present(store, "root", "kid", "grandkid") == set()


async def test_a_tree_with_a_live_descendant_is_kept_whole(store: Store) -> None:
    await finished(store, "root")
    await finished(store, "kid", parent_execution_id="root")
    await store.create(
        make_execution(id="busy", parent_execution_id="kid", status=ExecutionStatus.RUNNING)
    )
    assert (await purge_all(store))[0] == 0
    assert await present(store, "root", "kid", "busy") == {"root", "kid", "busy"}


async def test_an_orphan_is_purged(store: Store) -> None:
    await finished(store, "orphan", parent_execution_id="gone-long-ago")
    assert (await purge_all(store))[0] == 1


async def test_a_valid_idempotency_key_keeps_its_execution_until_it_expires(
    store: Store,
) -> None:
    keyed = {"idempotency_key": "order-1", "idempotency_expires_at": at(5000)}
    await finished(store, "keyed", **keyed)
    assert (await purge_all(store))[0] == 0  # a duplicate start must still find it
    duplicate = make_execution(id="dup", created_at=at(4000), **keyed)
    found, created = await store.create(duplicate)
    assert (found.id, created) == ("keyed", False)
    later = at(6000)
    executions, rows, _ = await purge_all(store, now=later)
    assert (executions, rows) == (1, ROWS_PER_FINISHED + 1)  # the key row too
    again, created = await store.create(make_execution(id="new", created_at=later, **keyed))
    assert (again.id, created) == ("new", True)


async def test_a_key_taken_over_by_a_newer_execution_stays_with_it(store: Store) -> None:
    await finished(store, "first", idempotency_key="k", idempotency_expires_at=at(20))
    # The key expired; a new execution took it over (and holds it until at(5000)).
    newer = make_execution(id="second", created_at=at(30), idempotency_key="k",
                           idempotency_expires_at=at(5000))  # fmt: skip
    assert (await store.create(newer))[1]
    assert (await purge_all(store))[0] == 1
    found, created = await store.create(
        make_execution(id="third", created_at=at(40), idempotency_key="k",
                       idempotency_expires_at=at(5000))
    )  # fmt: skip
    assert (found.id, created) == ("second", False)


async def test_batches_walk_every_candidate_once(store: Store) -> None:
    for n in range(7):
        await finished(store, f"c{n}", created=at(n))
    for n in range(3):
        await finished(store, f"f{n}", created=at(n), status=FAILED)
    await store.create(make_execution(id="parent", status=ExecutionStatus.WAITING))
    await finished(store, "kept", parent_execution_id="parent")
    executions, _, batches = await purge_all(store, limit=3)
    assert executions == 10
    assert batches >= 4  # 11 candidates, at most 3 examined per call
    assert await present(store, "kept", "parent") == {"kept", "parent"}


@pytest.mark.parametrize("status", [ExecutionStatus.WAITING, ExecutionStatus.RUNNING])
async def test_only_final_statuses_can_be_purged(store: Store, status: ExecutionStatus) -> None:
    with pytest.raises(ValueError, match="not a final status"):
        await store.purge(PurgeQuery(older_than=CUTOFF, now=CUTOFF, status=[status]))


async def test_a_malformed_cursor_is_rejected(store: Store) -> None:
    with pytest.raises(ValueError, match="invalid purge cursor"):
        await store.purge(PurgeQuery(older_than=CUTOFF, now=CUTOFF, cursor="nope"))


@pytest.mark.parametrize("limit", [100, 2])
async def test_plain_and_decided_candidates_in_the_same_batches(store: Store, limit: int) -> None:
    """Plain candidates (no parent, child or key; PostgreSQL deletes them on the server)
    beside ones the rules decide, in one batch (limit 100) or split over many (2): each
    is purged or kept as if alone, and every row is counted once."""
    for n in range(3):
        await finished(store, f"plain{n}", created=at(n))
    await finished(store, "root", created=at(3))
    await finished(store, "kid", created=at(4), parent_execution_id="root")
    await finished(store, "expired", created=at(5), idempotency_key="e",
                   idempotency_expires_at=at(20))  # fmt: skip
    await finished(store, "held", created=at(6), idempotency_key="h",
                   idempotency_expires_at=at(5000))  # fmt: skip
    await finished(store, "late", created=at(7), finished_at=at(2000))  # ended after the cutoff
    await finished(store, "plain3", created=at(8), status=CANCELLED)
    dry = await purge_all(store, limit=limit, dry_run=True)
    assert dry[:2] == (7, 0)
    executions, rows, _ = await purge_all(store, limit=limit)
    # plain0-3, root and kid, expired (+ its key row); held and late stay
    assert (executions, rows) == (7, 7 * ROWS_PER_FINISHED + 1)
    everyone = ["plain0", "plain1", "plain2", "plain3", "root", "kid", "expired", "held", "late"]
    assert await present(store, *everyone) == {"held", "late"}
    assert (await purge_all(store, limit=limit))[:2] == (0, 0)

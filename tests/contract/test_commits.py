"""Contract: step commits (fencing, deltas, history, events, resume tokens, tasks)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from contract.factories import (
    LEASE,
    at,
    ctx,
    event,
    make_execution,
    resume_token,
    started,
    step,
    step_record,
    task,
)
from flowmonkey import errors
from flowmonkey.model.execution import (
    Cancellation,
    ErrorInfo,
    Execution,
    ExecutionStatus,
    Token,
    TokenStatus,
)
from flowmonkey.model.records import Task
from flowmonkey.stores.base import Lease, Store, TaskQuery


async def snapshot(store: Store, execution_id: str) -> tuple[object, ...]:
    """Everything a commit may write for one execution."""
    stored = await store.get(execution_id)
    tasks = await store.list_tasks(TaskQuery(execution_id=execution_id, status=None))
    return (stored, await store.events(execution_id), tasks)


async def test_commit_writes_the_mutable_header(store: Store) -> None:
    execution, lease = await started(store, make_execution(context={"a": 1}))
    waiting = replace(
        execution,
        status=ExecutionStatus.WAITING,
        current_step_id="approve",
        tokens=[
            Token(
                id="t0", step_id="approve", status=TokenStatus.WAITING, wake_at=at(100),
                wait_reason="timer", wait_kind="timer", wait_started_at=at(2),
                wait_deadline_at=at(500), visit=3,
            ),
            Token(id="t1", step_id=None, status=TokenStatus.DONE, parent_id="t0", fork_id="f"),
        ],
        wake_at=at(100),
        wait_reason="timer",
        error=ErrorInfo(code="X", message="m", details={"a": [1]}, at=at(2)),
        last_error=ErrorInfo(code="Y", message="n"),
        step_count=3,
        run_number=2,
        updated_at=at(2),
        cancellation=Cancellation(source="system", reason=None, at=at(2)),
        retry_attempts={"start": 2},
        deadline_at=at(900),
        checkpoint={"step_id": "approve", "data": 1},
        event_seq=4,
    )  # fmt: skip
    await store.commit(lease, step(waiting))
    assert await store.get(execution.id) == waiting


async def test_commit_keeps_a_tokens_recovery_count(store: Store) -> None:
    """``Token.recoveries`` (re-claims of its step without a commit) is part of the
    header every store keeps: POISONED_STEP depends on it surviving each re-claim."""
    execution, lease = await started(store, make_execution())
    recovered = replace(
        execution,
        run_number=3,
        tokens=[Token(id="t0", step_id="start", recoveries=2)],
        updated_at=at(2),
    )
    await store.commit(lease, step(recovered))
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.tokens[0].recoveries == 2 and stored.run_number == 3
    assert stored == recovered


async def test_commit_writes_context_deltas_only(store: Store) -> None:
    execution, lease = await started(
        store, make_execution(context={"keep": {"big": "x" * 1000}, "drop": 1, "change": 1})
    )
    await store.commit(
        lease,
        step(execution, context_set=ctx(change={"v": 2}, new=[1, "é"]), context_delete=["drop"]),
    )
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.context == {"keep": {"big": "x" * 1000}, "change": {"v": 2}, "new": [1, "é"]}
    # Deleting a missing key is fine; a key both deleted and set ends up set.
    await store.commit(
        lease, step(execution, context_set=ctx(again=1), context_delete=["nope", "again"])
    )
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.context["again"] == 1
    assert stored.context["keep"] == {"big": "x" * 1000}


async def test_history_and_events_append_in_order(store: Store) -> None:
    execution, lease = await started(store)
    eid = execution.id
    first = [step_record("a", started=1), step_record("b", started=2)]
    await store.commit(
        lease, step(replace(execution, event_seq=2), history=first,
                    events=[event(eid, 1), event(eid, 2)]),
    )  # fmt: skip
    second = [step_record("b", attempt=2, started=3)]
    await store.commit(
        lease, step(replace(execution, event_seq=3), history=second, events=[event(eid, 3)])
    )
    stored = await store.get(eid)
    assert stored is not None
    assert stored.history == first + second
    assert stored.event_seq == 3
    without = await store.get(eid, history=False)
    assert without is not None
    assert without.history == []
    assert [e.sequence for e in await store.events(eid)] == [1, 2, 3]
    assert await store.events(eid, after=1) == [event(eid, 2), event(eid, 3)]
    assert await store.events(eid, after=3) == []
    assert await store.events("missing") == []


async def test_events_keep_their_payload(store: Store) -> None:
    execution, lease = await started(store)
    sent = event(execution.id, 1, "signal.received")
    sent.data["payload"] = {"nested": ["ü", 1.5, None]}
    await store.commit(lease, step(execution, events=[sent]))
    (got,) = await store.events(execution.id)
    assert got == sent
    assert got.type == "signal.received"
    assert got.timestamp == sent.timestamp
    assert got.data == sent.data


async def test_stale_lease_commit_writes_nothing(store: Store) -> None:
    execution, old = await started(store, make_execution(context={"a": 1}))
    token = resume_token(execution.id)
    await store.commit(old, step(execution, resume_tokens=[token]))
    taken = await store.acquire(execution.id, owner="w2", now=at(31), lease_for=LEASE)
    assert taken.lease is not None
    before = await snapshot(store, execution.id)
    eid = execution.id
    with pytest.raises(errors.LeaseLost):
        await store.commit(
            old,
            step(
                replace(execution, status=ExecutionStatus.COMPLETED, step_count=9, event_seq=1),
                context_set=ctx(a=2, b=3),
                context_delete=["a"],
                history=[step_record()],
                events=[event(eid, 1)],
                resume_tokens=[resume_token(eid)],
                use_resume_token=token.token_hash,
                revoke_resume_tokens=True,
                tasks=[task(eid)],
                cancel_pending_tasks=True,
                release=True,
            ),
        )
    assert await snapshot(store, execution.id) == before
    record = await store.get_resume_token(token.token_hash)
    assert record is not None
    assert record.status == "active"
    # The new holder is unaffected.
    await store.commit(taken.lease, step(taken.execution))


async def test_commit_on_missing_execution(store: Store) -> None:
    _execution, lease = await started(store)
    ghost = make_execution(id="ghost")
    with pytest.raises((errors.ExecutionNotFound, errors.LeaseLost)):
        await store.commit(replace(lease, execution_id="ghost"), step(ghost))


async def test_release_on_commit(store: Store) -> None:
    execution, lease = await started(store)
    await store.commit(lease, step(replace(execution, step_count=1), release=True))
    acquired = await store.acquire(execution.id, owner="w2", now=at(1), lease_for=LEASE)
    assert acquired.lease is not None
    assert acquired.lease.token > lease.token
    assert acquired.execution.step_count == 1


async def test_terminal_commit_releases_the_lease(store: Store) -> None:
    execution, lease = await started(store)
    done = replace(execution, status=ExecutionStatus.COMPLETED, finished_at=at(1))
    await store.commit(lease, step(done))
    acquired = await store.acquire(execution.id, owner="w1", now=at(2), lease_for=LEASE)
    assert acquired.lease is None
    assert acquired.execution.status is ExecutionStatus.COMPLETED
    with pytest.raises(errors.LeaseLost):
        await store.heartbeat(lease, now=at(2), lease_for=LEASE)


# -- resume tokens ----------------------------------------------------------------------


async def test_resume_token_lifecycle(store: Store) -> None:
    execution, lease = await started(store)
    token = resume_token(execution.id)
    await store.commit(lease, step(execution, resume_tokens=[token]))
    assert await store.get_resume_token(token.token_hash) == token
    assert await store.get_resume_token("unknown") is None

    used_at = at(10)
    resumed = replace(execution, updated_at=used_at, step_count=1)
    await store.commit(
        lease, step(resumed, use_resume_token=token.token_hash, context_set=ctx(resumeData=1))
    )
    record = await store.get_resume_token(token.token_hash)
    assert record is not None
    assert record.status == "used"
    assert record.used_at == used_at

    before = await snapshot(store, execution.id)
    with pytest.raises(errors.InvalidResumeToken):
        await store.commit(
            lease,
            step(
                replace(resumed, step_count=2, event_seq=1),
                use_resume_token=token.token_hash,
                context_set=ctx(resumeData=2),
                events=[event(execution.id, 1)],
                history=[step_record()],
            ),
        )
    assert await snapshot(store, execution.id) == before


async def test_unknown_or_foreign_resume_token_is_invalid(store: Store) -> None:
    execution, lease = await started(store)
    other, other_lease = await started(store)
    foreign = resume_token(other.id)
    await store.commit(other_lease, step(other, resume_tokens=[foreign]))
    for token_hash in ("unknown", foreign.token_hash):
        with pytest.raises(errors.InvalidResumeToken):
            await store.commit(
                lease, step(replace(execution, step_count=5), use_resume_token=token_hash)
            )
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.step_count == 0
    record = await store.get_resume_token(foreign.token_hash)
    assert record is not None
    assert record.status == "active"


async def test_revoke_resume_tokens(store: Store) -> None:
    execution, lease = await started(store)
    used, active1, active2 = (resume_token(execution.id) for _ in range(3))
    other, other_lease = await started(store)
    others = resume_token(other.id)
    await store.commit(other_lease, step(other, resume_tokens=[others]))
    await store.commit(lease, step(execution, resume_tokens=[used, active1, active2]))
    await store.commit(lease, step(execution, use_resume_token=used.token_hash))
    await store.commit(lease, step(execution, revoke_resume_tokens=True))
    statuses = {}
    for record in (used, active1, active2, others):
        stored = await store.get_resume_token(record.token_hash)
        assert stored is not None
        statuses[record.token_hash] = stored.status
    assert statuses == {
        used.token_hash: "used",
        active1.token_hash: "revoked",
        active2.token_hash: "revoked",
        others.token_hash: "active",
    }
    with pytest.raises(errors.InvalidResumeToken):
        await store.commit(lease, step(execution, use_resume_token=active1.token_hash))


async def token_statuses(store: Store, *records: Any) -> list[str]:
    statuses = []
    for record in records:
        stored = await store.get_resume_token(record.token_hash)
        assert stored is not None
        statuses.append(stored.status)
    return statuses


async def test_use_and_revoke_all_in_one_commit(store: Store) -> None:
    """The token being used ends ``used``, every other active one ``revoked``."""
    execution, lease = await started(store)
    used, other1, other2 = (resume_token(execution.id) for _ in range(3))
    await store.commit(lease, step(execution, resume_tokens=[used, other1, other2]))
    done = replace(execution, status=ExecutionStatus.COMPLETED, finished_at=at(1))
    await store.commit(
        lease, step(done, use_resume_token=used.token_hash, revoke_resume_tokens=True,
                    revoke_step_tokens=[used.step_id], cancel_pending_tasks=True),
    )  # fmt: skip
    assert await token_statuses(store, used, other1, other2) == ["used", "revoked", "revoked"]


async def test_use_and_revoke_step_tokens_in_one_commit(store: Store) -> None:
    execution, lease = await started(store)
    used = resume_token(execution.id, step_id="wait")
    same_step = resume_token(execution.id, step_id="wait")
    elsewhere = resume_token(execution.id, step_id="other")
    await store.commit(lease, step(execution, resume_tokens=[used, same_step, elsewhere]))
    await store.commit(
        lease, step(execution, use_resume_token=used.token_hash, revoke_step_tokens=["wait"])
    )
    statuses = await token_statuses(store, used, same_step, elsewhere)
    assert statuses == ["used", "revoked", "active"]


async def test_new_tokens_and_revocations_in_one_commit(store: Store) -> None:
    """Revocations apply after this commit's own new tokens (as in the memory store)."""
    execution, lease = await started(store)
    old = resume_token(execution.id, step_id="wait")
    await store.commit(lease, step(execution, resume_tokens=[old]))
    fresh = resume_token(execution.id, step_id="wait")
    await store.commit(lease, step(execution, resume_tokens=[fresh], revoke_step_tokens=["wait"]))
    assert await token_statuses(store, old, fresh) == ["revoked", "revoked"]
    kept = resume_token(execution.id, step_id="next")
    await store.commit(lease, step(execution, resume_tokens=[kept], revoke_resume_tokens=True))
    assert await token_statuses(store, kept) == ["revoked"]


async def test_new_tasks_and_cancel_pending_in_one_commit(store: Store) -> None:
    execution, lease = await started(store)
    await commit_tasks(store, lease, execution, task(execution.id, id="old"))
    await store.commit(
        lease, step(execution, tasks=[task(execution.id, id="new")], cancel_pending_tasks=True)
    )
    statuses = [(await store.get_task(i)).status for i in ("old", "new")]  # type: ignore[union-attr]
    assert statuses == ["cancelled", "cancelled"]


# -- tasks ------------------------------------------------------------------------------


async def commit_tasks(store: Store, lease: Lease, execution: Execution, *tasks: Task) -> None:
    await store.commit(lease, step(execution, tasks=list(tasks)))


async def test_task_create_get_and_idempotent_reinsert(store: Store) -> None:
    execution, lease = await started(store)
    created = task(
        execution.id, tenant_id="t1", description="d", assignee="ann", role="approver",
        priority="high", form={"type": "object", "properties": {"ok": {"type": "boolean"}}},
        due_at=at(3600), token_id="t0", visit=2, metadata={"k": ["v"]},
    )  # fmt: skip
    await commit_tasks(store, lease, execution, created)
    assert await store.get_task(created.id) == created
    assert await store.get_task("missing") is None
    await commit_tasks(store, lease, execution, created)
    listed = await store.list_tasks(TaskQuery(execution_id=execution.id, status=None))
    assert listed == [created]
    completed = replace(
        created, status="completed", output={"ok": True}, completed_at=at(5), completed_by="ann"
    )
    await commit_tasks(store, lease, execution, completed)
    assert await store.get_task(created.id) == completed


async def test_list_tasks_filters(store: Store) -> None:
    execution, lease = await started(store)
    other, other_lease = await started(store)
    t_ann = task(execution.id, id="a", assignee="ann", tenant_id="t1", created_at=at(1))
    t_role = task(execution.id, id="b", role="ops", tenant_id="t1", created_at=at(2))
    t_done = task(execution.id, id="c", assignee="ann", status="completed", created_at=at(3))
    t_other = task(other.id, id="d", assignee="bob", tenant_id="t2", created_at=at(0))
    await commit_tasks(store, lease, execution, t_ann, t_role, t_done)
    await commit_tasks(store, other_lease, other, t_other)

    async def ids(**filters: Any) -> list[str]:
        return [t.id for t in await store.list_tasks(TaskQuery(**filters))]

    assert await ids() == ["d", "a", "b"]  # pending by default, oldest first
    assert await ids(status=None) == ["d", "a", "b", "c"]
    assert await ids(assignee="ann") == ["a"]
    assert await ids(assignee="ann", status="completed") == ["c"]
    assert await ids(role="ops") == ["b"]
    assert await ids(tenant_id="t1") == ["a", "b"]
    assert await ids(tenant_id="t2") == ["d"]
    assert await ids(execution_id=execution.id, status=None) == ["a", "b", "c"]
    assert await ids(limit=2) == ["d", "a"]


async def test_list_tasks_pages_by_keyset_either_way(store: Store) -> None:
    execution, lease = await started(store)
    made = [
        task(execution.id, id=f"k{n}", tenant_id="t1", created_at=at(n // 2)) for n in range(7)
    ]  # pairs share a time: the id breaks the tie
    await commit_tasks(store, lease, execution, *made)
    for newest_first in (True, False):
        seen: list[str] = []
        after = None
        while True:
            page = await store.list_tasks(
                TaskQuery(tenant_id="t1", limit=3, newest_first=newest_first, after=after)
            )
            seen += [t.id for t in page]
            if len(page) < 3:
                break
            after = (page[-1].created_at, page[-1].id)
        oldest_first = [f"k{n}" for n in range(7)]
        assert seen == (oldest_first[::-1] if newest_first else oldest_first)


async def test_cancel_pending_tasks(store: Store) -> None:
    execution, lease = await started(store)
    other, other_lease = await started(store)
    pending = task(execution.id, id="p")
    done = task(execution.id, id="done", status="completed")
    foreign = task(other.id, id="foreign")
    await commit_tasks(store, lease, execution, pending, done)
    await commit_tasks(store, other_lease, other, foreign)
    await store.commit(lease, step(execution, cancel_pending_tasks=True))
    statuses = {}
    for task_id in ("p", "done", "foreign"):
        stored = await store.get_task(task_id)
        assert stored is not None
        statuses[task_id] = stored.status
    assert statuses == {"p": "cancelled", "done": "completed", "foreign": "pending"}

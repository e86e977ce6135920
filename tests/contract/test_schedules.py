"""Schedules: stored with their state, leased by one claimer at a time, runs recorded once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from flowmonkey import errors
from flowmonkey.model.schedules import Schedule, ScheduleRun
from flowmonkey.stores.base import Store

from .factories import LEASE, at


def make_schedule(sid: str = "nightly", *, next_at: float = 60, **fields: object) -> Schedule:
    values: dict[str, object] = {
        "id": sid,
        "flow_id": "report",
        "cron": "0 2 * * *",
        "timezone": "Europe/Berlin",
        "input": {"day": "{{ schedule.scheduled_for }}"},
        "overlap": "buffer_one",
        "catchup": "all",
        "catchup_window": timedelta(hours=2),
        "jitter": timedelta(seconds=5),
        "start_at": at(0),
        "end_at": at(86400),
        "tenant_id": "acme",
        "created_at": at(0),
        "updated_at": at(0),
        "next_fire_at": at(next_at),
    }
    values.update(fields)
    return Schedule(**values)  # type: ignore[arg-type]


async def test_a_schedule_round_trips_with_every_field(store: Store) -> None:
    schedule = make_schedule(last_execution_id="ex-1", buffered_for=at(30))
    await store.create_schedule(schedule)
    assert await store.get_schedule("nightly") == schedule
    assert await store.get_schedule("missing") is None
    with pytest.raises(errors.AlreadyExists):
        await store.create_schedule(make_schedule())


async def test_list_filters_by_tenant_and_delete_removes_runs(store: Store) -> None:
    await store.create_schedule(make_schedule("b"))
    await store.create_schedule(make_schedule("a", tenant_id="other"))
    assert [s.id for s in await store.list_schedules()] == ["a", "b"]
    assert [s.id for s in await store.list_schedules(tenant_id="acme")] == ["b"]
    await store.record_schedule_run(
        ScheduleRun(schedule_id="b", scheduled_for=at(60), fired_at=at(61), outcome="started")
    )
    assert await store.delete_schedule("b") is True
    assert await store.delete_schedule("b") is False
    assert await store.list_schedule_runs("b") == []


async def test_claim_takes_due_unpaused_schedules_once(store: Store) -> None:
    await store.create_schedule(make_schedule("due", next_at=10))
    await store.create_schedule(make_schedule("later", next_at=500))
    await store.create_schedule(make_schedule("paused", next_at=10, paused=True))
    await store.create_schedule(make_schedule("never", next_at=10, next_fire_at=None))
    first = await store.claim_schedules(owner="w1", now=at(20), lease_for=LEASE, limit=10)
    assert [s.id for s in first] == ["due"]
    # Held by w1: w2 gets nothing until the lease expires.
    assert await store.claim_schedules(owner="w2", now=at(21), lease_for=LEASE, limit=10) == []
    again = await store.claim_schedules(owner="w2", now=at(20) + LEASE, lease_for=LEASE, limit=10)
    assert [s.id for s in again] == ["due"]
    # w1 lost it: its release writes nothing.
    assert (
        await store.release_schedule(replace(first[0], next_fire_at=at(999)), owner="w1") is False
    )
    stored = await store.get_schedule("due")
    assert stored is not None and stored.next_fire_at == at(10)


async def test_release_writes_the_state_and_frees_the_lease(store: Store) -> None:
    await store.create_schedule(make_schedule("s", next_at=10))
    [held] = await store.claim_schedules(owner="w1", now=at(20), lease_for=LEASE, limit=1)
    moved = replace(
        held, next_fire_at=at(100), last_execution_id="ex-9", buffered_for=None, cron="* * * * *"
    )
    assert await store.release_schedule(moved, owner="w1") is True
    stored = await store.get_schedule("s")
    assert stored is not None
    assert (stored.next_fire_at, stored.last_execution_id) == (at(100), "ex-9")
    assert stored.cron == "0 2 * * *"  # the definition is not the releaser's to change
    assert await store.claim_schedules(owner="w2", now=at(100), lease_for=LEASE, limit=1)


async def test_a_buffered_time_makes_a_schedule_due(store: Store) -> None:
    await store.create_schedule(make_schedule("s", next_at=500, buffered_for=at(10)))
    claimed = await store.claim_schedules(owner="w1", now=at(20), lease_for=LEASE, limit=1)
    assert [s.id for s in claimed] == ["s"]


async def test_claim_one_schedule_whether_due_or_not(store: Store) -> None:
    await store.create_schedule(make_schedule("s", next_at=500, paused=True))
    one = await store.claim_schedules(
        owner="w1", now=at(0), lease_for=LEASE, limit=1, schedule_id="s"
    )
    assert [s.id for s in one] == ["s"]
    other = await store.claim_schedules(
        owner="w2", now=at(1), lease_for=LEASE, limit=1, schedule_id="s"
    )
    assert other == []


async def test_save_replaces_the_definition_and_drops_the_lease(store: Store) -> None:
    await store.create_schedule(make_schedule("s", next_at=10))
    [held] = await store.claim_schedules(owner="w1", now=at(20), lease_for=LEASE, limit=1)
    assert await store.save_schedule(
        replace(held, paused=True, cron="5 * * * *", updated_at=at(21))
    )
    assert await store.release_schedule(held, owner="w1") is False
    stored = await store.get_schedule("s")
    assert stored is not None and stored.paused and stored.cron == "5 * * * *"
    assert stored.updated_at == at(21)
    assert await store.save_schedule(make_schedule("missing")) is False


async def test_concurrent_claimers_never_share_a_schedule(store: Store) -> None:
    for n in range(20):
        await store.create_schedule(make_schedule(f"s{n:02d}", next_at=10))
    results = await asyncio.gather(
        *(
            store.claim_schedules(owner=f"w{n}", now=at(20), lease_for=LEASE, limit=20)
            for n in range(4)
        )
    )
    ids = [s.id for batch in results for s in batch]
    assert sorted(ids) == [f"s{n:02d}" for n in range(20)]


async def test_a_scheduled_time_is_recorded_once(store: Store) -> None:
    first = ScheduleRun(
        schedule_id="s",
        scheduled_for=at(60),
        fired_at=at(61),
        outcome="started",
        execution_id="ex-1",
    )
    second = replace(first, fired_at=at(62), execution_id="ex-2")
    assert await store.record_schedule_run(first) == first
    assert await store.record_schedule_run(second) == first
    skipped = ScheduleRun(
        schedule_id="s",
        scheduled_for=at(120),
        fired_at=at(121),
        outcome="skipped",
        reason="overlap",
    )
    await store.record_schedule_run(skipped)
    assert await store.list_schedule_runs("s") == [skipped, first]
    assert await store.list_schedule_runs("s", limit=1) == [skipped]
    started = replace(skipped, outcome="started", execution_id="ex-3", reason=None)
    await store.update_schedule_run(started)
    assert (await store.list_schedule_runs("s", limit=1)) == [started]


async def test_next_schedule_time_is_the_earliest_unpaused(store: Store) -> None:
    assert await store.next_schedule_time() is None
    await store.create_schedule(make_schedule("a", next_at=50))
    await store.create_schedule(make_schedule("b", next_at=20, paused=True))
    await store.create_schedule(make_schedule("c", next_at=30))
    assert await store.next_schedule_time() == at(30)


def _fire_pair(time: float, execution_id: str, **fields: object) -> tuple[ScheduleRun, object]:
    from flowmonkey.model.events import Event

    from .factories import make_execution

    run = ScheduleRun(
        schedule_id="s",
        scheduled_for=at(time),
        fired_at=at(time),
        outcome="started",
        execution_id=execution_id,
    )
    key = fields.pop("key", f"schedule:s:{at(time).isoformat()}")
    execution = make_execution(
        id=execution_id,
        context={"n": time},
        created_at=at(time),
        idempotency_key=key,
        idempotency_expires_at=at(time + 3600),
        **fields,
    )
    event = Event("execution.created", execution_id, at(time), {"execution_id": execution_id}, 1)
    return run, (execution, [event])


async def test_fire_records_the_run_and_creates_the_execution_together(store: Store) -> None:
    run, (execution, events) = _fire_pair(60, "ex-fire-1")
    stored, created = await store.fire_schedule_time(run, execution, events)
    assert (stored, created) == (run, True)
    found = await store.get("ex-fire-1")
    assert found is not None and found.context == {"n": 60}
    assert [e.type for e in await store.events("ex-fire-1")] == ["execution.created"]
    # The same time again (another process, a retry): nothing written, the first run back.
    again, (other, other_events) = _fire_pair(60, "ex-fire-2")
    assert await store.fire_schedule_time(again, other, other_events) == (run, False)
    assert await store.get("ex-fire-2") is None
    assert await store.list_schedule_runs("s") == [run]


async def test_fire_without_an_execution_records_a_skip(store: Store) -> None:
    skipped = ScheduleRun(
        schedule_id="s", scheduled_for=at(5), fired_at=at(6), outcome="skipped", reason="overlap"
    )
    assert await store.fire_schedule_time(skipped, None) == (skipped, False)
    assert await store.list_schedule_runs("s") == [skipped]


async def test_fire_whose_key_is_held_points_the_run_at_the_holder(store: Store) -> None:
    _, (holder, holder_events) = _fire_pair(60, "ex-holder", key="shared")
    await store.create(holder, holder_events)
    run, (execution, events) = _fire_pair(60, "ex-new", key="shared")
    stored, created = await store.fire_schedule_time(run, execution, events)
    assert created is False and stored.execution_id == "ex-holder"
    assert await store.get("ex-new") is None
    assert await store.list_schedule_runs("s") == [stored]


async def test_a_failed_create_records_no_run(store: Store) -> None:
    run, (execution, events) = _fire_pair(60, "ex-dup")
    _, (taken, _) = _fire_pair(60, "ex-dup", key="another")
    await store.create(taken, [])  # the id is taken
    with pytest.raises(errors.StoreError):
        await store.fire_schedule_time(run, execution, events)
    assert await store.list_schedule_runs("s") == []


async def test_release_many_is_fenced_per_schedule(store: Store) -> None:
    for sid in ("a", "b", "c"):
        await store.create_schedule(make_schedule(sid, next_at=10))
    held = await store.claim_schedules(owner="w1", now=at(20), lease_for=LEASE, limit=3)
    await store.save_schedule(replace(held[1], paused=True))  # b changed meanwhile
    moved = [replace(s, next_fire_at=at(500), last_execution_id=f"ex-{s.id}") for s in held]
    assert await store.release_schedules(moved, owner="w1") == 2
    got = {s.id: s for s in await store.list_schedules()}
    assert got["a"].next_fire_at == at(500) and got["c"].last_execution_id == "ex-c"
    assert got["b"].next_fire_at == at(10) and got["b"].paused


async def test_fire_many_handles_each_time_as_fire_one_would(store: Store) -> None:
    first, (execution, events) = _fire_pair(60, "ex-many-0")
    assert await store.fire_schedule_times([(first, execution, events)]) == [(first, True)]
    again, (repeat, repeat_events) = _fire_pair(60, "ex-many-1")  # recorded before
    fresh, (new, new_events) = _fire_pair(61, "ex-many-2")
    skipped = ScheduleRun(
        schedule_id="s", scheduled_for=at(62), fired_at=at(62), outcome="skipped", reason="overlap"
    )
    _, (holder, holder_events) = _fire_pair(63, "ex-holder", key="shared")
    await store.create(holder, holder_events)
    held, (loser, loser_events) = _fire_pair(63, "ex-many-3", key="shared")
    found = await store.fire_schedule_times(
        [
            (again, repeat, repeat_events),
            (fresh, new, new_events),
            (skipped, None, ()),
            (held, loser, loser_events),
        ]
    )
    assert found[:3] == [(first, False), (fresh, True), (skipped, False)]
    assert found[3] == (replace(held, execution_id="ex-holder"), False)
    assert await store.get("ex-many-1") is None and await store.get("ex-many-3") is None
    created = await store.get("ex-many-2")
    assert created is not None and created.context == {"n": 61}
    runs = await store.list_schedule_runs("s")
    assert [r.scheduled_for for r in runs] == [at(63), at(62), at(61), at(60)]
    assert await store.fire_schedule_times([]) == []


async def test_fire_many_is_all_or_nothing(store: Store) -> None:
    ok, (execution, events) = _fire_pair(60, "ex-batch-ok")
    bad, (clash, clash_events) = _fire_pair(61, "ex-taken")
    _, (taken, _) = _fire_pair(99, "ex-taken", key="another")
    await store.create(taken, [])  # the second time's execution id is taken
    with pytest.raises(errors.StoreError):
        await store.fire_schedule_times([(ok, execution, events), (bad, clash, clash_events)])
    assert await store.list_schedule_runs("s") == []
    assert await store.get("ex-batch-ok") is None
    # Nothing of the failed batch holds the first time's key: it fires normally.
    assert await store.fire_schedule_times([(ok, execution, events)]) == [(ok, True)]


async def test_fire_many_creates_nothing_for_a_time_whose_key_expired(store: Store) -> None:
    first, (execution, events) = _fire_pair(60, "ex-old")
    await store.fire_schedule_times([(first, execution, events)])
    # Much later the same time comes again (a backfill): its key expired, so inserting
    # the execution would succeed; the recorded run must still win and nothing stay.
    again, (late, late_events) = _fire_pair(60, "ex-late")
    late = replace(late, created_at=at(9000), idempotency_expires_at=at(12600))
    fresh, (new, new_events) = _fire_pair(9000, "ex-fresh")
    found = await store.fire_schedule_times([(again, late, late_events), (fresh, new, new_events)])
    assert found == [(first, False), (fresh, True)]
    assert await store.get("ex-late") is None
    assert await store.get("ex-fresh") is not None


async def test_schedules_page_by_id_within_a_tenant(store: Store) -> None:
    for n in range(7):
        tenant = "acme" if n % 3 else "other"
        await store.create_schedule(make_schedule(f"s{n:02d}", tenant_id=tenant))
    pages: list[list[str]] = []
    after = None
    while True:
        page = await store.list_schedules(tenant_id="acme", after=after, limit=2)
        pages.append([s.id for s in page])
        if len(page) < 2:
            break
        after = page[-1].id
    assert pages == [["s01", "s02"], ["s04", "s05"], []]
    assert [s.id for s in await store.list_schedules(after="s04", limit=5)] == ["s05", "s06"]
    assert len(await store.list_schedules()) == 7


async def test_runs_page_newest_first(store: Store) -> None:
    for n in range(5):
        run = ScheduleRun(
            schedule_id="s", scheduled_for=at(n), fired_at=at(n), outcome="skipped", reason="x"
        )
        await store.record_schedule_run(run)
    first = await store.list_schedule_runs("s", limit=2)
    second = await store.list_schedule_runs("s", limit=2, before=first[-1].scheduled_for)
    third = await store.list_schedule_runs("s", limit=2, before=second[-1].scheduled_for)
    times = [r.scheduled_for for r in first + second + third]
    assert times == [at(4), at(3), at(2), at(1), at(0)]

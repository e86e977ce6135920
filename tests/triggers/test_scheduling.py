"""Schedules fired by the engine: exactly once per time, overlap, catch-up, jitter, bounds,
run now, backfill, templates, and the recovery of a holder that died mid-fire."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.support import echo, noop, wait_forever
from flowmonkey import FlowBuilder, errors
from flowmonkey.engine.engine import Engine
from flowmonkey.engine.scheduling import jitter_for
from flowmonkey.model.schedules import ScheduleRun, schedule_key
from flowmonkey.stores.base import ExecutionQuery
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def flows() -> list[Any]:
    return [
        FlowBuilder("quick").step("s", "echo").build(),
        FlowBuilder("slow").step("w", "wait").build(),
    ]


def engine_of(make: MakeEngine, clock: FakeClock) -> Engine:
    clock.set(T0)
    return make([echo, noop, wait_forever], flows())


async def executions(engine: Engine) -> list[Any]:
    page = await engine.store.list(ExecutionQuery(limit=1000))
    return sorted(page.items, key=lambda e: e.metadata.get("scheduled_for", ""))


async def test_bad_definitions_list_every_problem_and_store_nothing(
    make: MakeEngine, clock: FakeClock
) -> None:
    async with engine_of(make, clock) as engine:
        with pytest.raises(errors.InvalidSchedule) as caught:
            await engine.schedules.create(
                flow_id="quick",
                cron="61 * * * *",
                timezone="Mars/Base",
                overlap="sometimes",
                start_at="2026-02-01T00:00:00Z",
                end_at="2026-01-01T00:00:00Z",
                colour="red",
            )
        paths = sorted(p["path"] for p in caught.value.details)
        assert paths == ["colour", "cron", "end_at", "overlap", "timezone"]
        with pytest.raises(errors.InvalidSchedule) as caught:
            await engine.schedules.create(flow_id="quick", cron="0 * * * *", timezone="Mars/Base")
        assert caught.value.details == [
            {"path": "timezone", "message": "unknown time zone 'Mars/Base'"}
        ]
        with pytest.raises(errors.InvalidSchedule, match="nope"):
            await engine.schedules.create(flow_id="nope", cron="0 * * * *")
        assert await engine.schedules.list() == []


async def test_each_time_starts_one_execution_with_the_template_input(
    make: MakeEngine, clock: FakeClock
) -> None:
    async with engine_of(make, clock) as engine:
        schedule = await engine.schedules.create(
            id="tick",
            flow_id="quick",
            cron="* * * * *",
            overlap="allow",
            input={"at": "{{ schedule.scheduled_for }}", "who": ["{{schedule.id}}", 3]},
        )
        assert schedule.next_fire_at == T0 + timedelta(minutes=1)
        assert (await engine.fire_schedules()).created == []
        for _ in range(3):
            clock.advance(60)
            report = await engine.fire_schedules()
            assert len(report.created) == 1
            assert (await engine.fire_schedules()).created == []  # nothing due twice
        done = await executions(engine)
        assert [e.context["at"] for e in done] == [
            (T0 + timedelta(minutes=n)).isoformat() for n in (1, 2, 3)
        ]
        assert done[0].context["who"] == ["tick", 3]
        assert done[0].idempotency_key == schedule_key("tick", T0 + timedelta(minutes=1))
        runs = await engine.schedules.runs("tick")
        assert [(r.outcome, r.execution_id) for r in runs] == [
            ("started", e.id) for e in reversed(done)
        ]


async def test_two_engines_firing_together_start_one_execution_per_time(
    make: MakeEngine, clock: FakeClock
) -> None:
    first, second = engine_of(make, clock), engine_of(make, clock)
    first.owner, second.owner = "worker-a", "worker-b"
    async with first, second:
        for n in range(5):
            await first.schedules.create(
                id=f"s{n}", flow_id="quick", cron="* * * * * *", overlap="allow", catchup="all"
            )
        for _ in range(10):
            clock.advance(1)
            await asyncio.gather(first.fire_schedules(), second.fire_schedules())
        keys = [e.idempotency_key for e in await executions(first)]
        assert len(keys) == len(set(keys)) == 50


async def test_a_holder_that_died_after_recording_is_finished_by_the_next(
    make: MakeEngine, clock: FakeClock
) -> None:
    async with engine_of(make, clock) as engine:
        await engine.schedules.create(id="s", flow_id="quick", cron="* * * * *", overlap="allow")
        due = T0 + timedelta(minutes=1)
        clock.set(due)
        # A process leased it, recorded the run, and died before creating the execution.
        [held] = await engine.store.claim_schedules(
            owner="dead", now=due, lease_for=timedelta(seconds=30), limit=1
        )
        await engine.store.record_schedule_run(
            ScheduleRun(
                schedule_id="s",
                scheduled_for=due,
                fired_at=due,
                outcome="started",
                execution_id="ex-promised",
            )
        )
        assert (await engine.fire_schedules()).created == []  # still leased
        clock.advance(31)
        report = await engine.fire_schedules()
        assert report.created == ["ex-promised"]
        again = await engine.schedules.runs("s")
        assert [r.execution_id for r in again] == ["ex-promised"]
        assert held.next_fire_at == due


async def test_overlap_skip_buffer_one_allow_and_cancel_previous(
    make: MakeEngine, clock: FakeClock
) -> None:
    async with engine_of(make, clock) as engine:
        for policy in ("skip", "buffer_one", "allow", "cancel_previous"):
            await engine.schedules.create(
                id=policy, flow_id="slow", cron="* * * * *", overlap=policy
            )
        for _ in range(3):
            clock.advance(60)
            await engine.fire_schedules()
            await engine.run_until_idle()  # every started run waits forever
        outcomes = {
            policy: [r.outcome for r in reversed(await engine.schedules.runs(policy))]
            for policy in ("skip", "buffer_one", "allow", "cancel_previous")
        }
        assert outcomes == {
            "skip": ["started", "skipped", "skipped"],
            "buffer_one": ["started", "buffered", "skipped"],
            "allow": ["started", "started", "started"],
            "cancel_previous": ["started", "started", "started"],
        }
        cancelled = list(await engine.schedules.runs("cancel_previous"))[1:]
        for run in cancelled:
            found = await engine.get(run.execution_id or "")
            assert found is not None and found.status == "cancelled"
        # The buffered time starts once the previous run ends.
        [first] = [r for r in await engine.schedules.runs("buffer_one") if r.outcome == "started"]
        await engine.cancel(first.execution_id or "")
        report = await engine.fire_schedules()
        assert len(report.created) == 1
        runs = {r.scheduled_for: r for r in await engine.schedules.runs("buffer_one")}
        assert runs[T0 + timedelta(minutes=2)].outcome == "started"
        assert runs[T0 + timedelta(minutes=2)].execution_id == report.created[0]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("none", {"started": [], "skipped": [20, 30, 40, 50]}),
        ("latest", {"started": [50], "skipped": [20, 30, 40]}),
        ("all", {"started": [20, 30, 40, 50], "skipped": []}),
    ],
)
async def test_catchup_after_downtime(
    make: MakeEngine, clock: FakeClock, policy: str, expected: dict[str, list[int]]
) -> None:
    async with engine_of(make, clock) as engine:
        await engine.schedules.create(
            id="s",
            flow_id="quick",
            cron="*/10 * * * *",
            overlap="allow",
            catchup=policy,
            catchup_window="45m",
        )
        clock.advance(timedelta(minutes=10))
        await engine.fire_schedules()  # 12:10 fires on time
        clock.set(T0 + timedelta(minutes=55, seconds=30))  # down from 12:10 to 12:55
        await engine.fire_schedules()
        runs = [
            r
            for r in await engine.schedules.runs("s")
            if r.scheduled_for > T0 + timedelta(minutes=10)
        ]
        got: dict[str, list[int]] = {"started": [], "skipped": []}
        for run in sorted(runs, key=lambda r: r.scheduled_for):
            got[run.outcome].append(run.scheduled_for.minute)
        assert got == expected
        stored = await engine.schedules.get("s")
        assert stored.next_fire_at == T0 + timedelta(hours=1)


async def test_times_outside_the_catchup_window_are_dropped(
    make: MakeEngine, clock: FakeClock
) -> None:
    async with engine_of(make, clock) as engine:
        await engine.schedules.create(
            id="s",
            flow_id="quick",
            cron="*/10 * * * *",
            overlap="allow",
            catchup="all",
            catchup_window="25m",
        )
        seen: list[Any] = []
        engine.on("schedule.skipped", seen.append)
        clock.set(T0 + timedelta(hours=2, minutes=1))
        await engine.fire_schedules()
        started = sorted(r.scheduled_for for r in await engine.schedules.runs("s"))
        assert started == [
            T0 + timedelta(hours=1, minutes=40),
            T0 + timedelta(hours=1, minutes=50),
            T0 + timedelta(hours=2),
        ]
        assert seen[0].data["count"] == 9  # 12:10 .. 13:30


async def test_jitter_is_stable_bounded_and_delays_the_fire(
    make: MakeEngine, clock: FakeClock
) -> None:
    async with engine_of(make, clock) as engine:
        schedule = await engine.schedules.create(
            id="j", flow_id="quick", cron="0 * * * *", jitter="10m"
        )
        due = T0 + timedelta(hours=1)
        delay = jitter_for(schedule, due)
        assert delay == jitter_for(schedule, due)
        assert timedelta(0) <= delay <= timedelta(minutes=10)
        spread = {jitter_for(schedule, due + timedelta(hours=n)) for n in range(20)}
        assert len(spread) > 10
        clock.set(due + delay - timedelta(milliseconds=1))
        report = await engine.fire_schedules()
        assert report.created == [] and report.wake_at == due + delay
        clock.set(due + delay)
        assert len((await engine.fire_schedules()).created) == 1


async def test_start_and_end_bound_the_times(make: MakeEngine, clock: FakeClock) -> None:
    async with engine_of(make, clock) as engine:
        schedule = await engine.schedules.create(
            id="b",
            flow_id="quick",
            cron="0 * * * *",
            overlap="allow",
            start_at=(T0 + timedelta(hours=3)).isoformat(),
            end_at=(T0 + timedelta(hours=4, minutes=30)).isoformat(),
        )
        assert schedule.next_fire_at == T0 + timedelta(hours=3)
        assert engine.schedules.next_times(schedule) == [
            T0 + timedelta(hours=3),
            T0 + timedelta(hours=4),
        ]
        for hour in range(1, 7):
            clock.set(T0 + timedelta(hours=hour))
            await engine.fire_schedules()
        assert len(await executions(engine)) == 2
        assert (await engine.schedules.get("b")).next_fire_at is None


async def test_pause_stops_firing_and_unpause_skips_the_paused_times(
    make: MakeEngine, clock: FakeClock
) -> None:
    async with engine_of(make, clock) as engine:
        await engine.schedules.create(id="p", flow_id="quick", cron="* * * * *", catchup="all")
        await engine.schedules.pause("p")
        clock.advance(timedelta(minutes=5))
        assert (await engine.fire_schedules()).created == []
        resumed = await engine.schedules.unpause("p")
        assert resumed.next_fire_at == T0 + timedelta(minutes=6)
        clock.advance(60)
        assert len((await engine.fire_schedules()).created) == 1


async def test_run_now_with_overlap_override_and_backfill_exactly_once(
    make: MakeEngine, clock: FakeClock
) -> None:
    async with engine_of(make, clock) as engine:
        await engine.schedules.create(id="r", flow_id="slow", cron="0 0 * * *", overlap="skip")
        first = await engine.schedules.trigger("r")
        assert first.outcome == "started"
        await engine.run_until_idle()
        clock.advance(1)
        assert (await engine.schedules.trigger("r")).outcome == "skipped"
        clock.advance(1)
        assert (await engine.schedules.trigger("r", overlap="allow")).outcome == "started"
        start, end = T0 - timedelta(days=3), T0
        runs = await engine.schedules.backfill("r", start, end)
        assert [r.scheduled_for.day for r in runs] == [30, 31, 1] and all(
            r.outcome == "started" for r in runs
        )
        again = await engine.schedules.backfill("r", start, end)
        assert [r.execution_id for r in again] == [r.execution_id for r in runs]
        assert len(await executions(engine)) == 2 + 3
        with pytest.raises(errors.InvalidSchedule):
            await engine.schedules.backfill("r", end, start)
        with pytest.raises(errors.ScheduleNotFound):
            await engine.schedules.trigger("missing")


async def test_many_due_schedules_are_claimed_in_batches_within_one_call(
    make: MakeEngine, clock: FakeClock
) -> None:
    from flowmonkey.engine.scheduling import CLAIM_BATCH

    async with engine_of(make, clock) as engine:
        count = CLAIM_BATCH * 2 + 5
        for n in range(count):
            await engine.schedules.create(id=f"b{n:02d}", flow_id="quick", cron="* * * * *")
        clock.advance(60)
        report = await engine.fire_schedules(limit=1000)
        assert len(report.created) == count and report.released == count
        # a schedule whose buffered time waits stays due, and is not claimed over and over
        await engine.schedules.create(
            id="buf", flow_id="slow", cron="* * * * *", overlap="buffer_one"
        )
        clock.advance(60)
        await engine.fire_schedules()
        await engine.run_until_idle()
        clock.advance(60)
        second = await engine.fire_schedules(limit=1000)
        assert second.released == count + 1
        third = await engine.fire_schedules(limit=1000)
        assert third.created == [] and third.released == 1  # only "buf", once


async def test_a_failed_batch_is_fired_time_by_time_and_only_the_bad_one_waits(
    make: MakeEngine, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine_of(make, clock) as engine:
        for n in range(5):
            await engine.schedules.create(id=f"p{n}", flow_id="quick", cron="* * * * *")
        due = (await engine.schedules.get("p2")).next_fire_at
        store = engine.store
        real_one = store.fire_schedule_time

        async def refuse_batches(items: Any) -> Any:
            raise errors.StoreError("the batch is refused")

        async def one(run: ScheduleRun, execution: Any, events: Any = ()) -> Any:
            if run.schedule_id == "p2":
                raise errors.StoreError("p2 cannot be stored")
            return await real_one(run, execution, events)

        monkeypatch.setattr(store, "fire_schedule_times", refuse_batches)
        monkeypatch.setattr(store, "fire_schedule_time", one)
        clock.advance(60)
        report = await engine.fire_schedules()
        assert len(report.created) == 4 and report.released == 4
        started = {e.metadata["schedule_id"] for e in await executions(engine)}
        assert started == {"p0", "p1", "p3", "p4"}
        # p2 was not moved on (its lease expires and its time is redone, exactly once)
        assert (await engine.schedules.get("p2")).next_fire_at == due
        monkeypatch.undo()
        clock.advance(engine.options.lease_for.total_seconds() + 1)
        again = await engine.fire_schedules()
        assert again.released == 1 and len(again.created) == 1  # p2 only: the rest is not due
        runs = await engine.schedules.runs("p2")
        assert [r.scheduled_for for r in runs if r.outcome == "started"][-1] == due

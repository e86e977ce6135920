"""Firing schedules: exactly once per scheduled time, whatever the number of processes.

``fire_due`` is what every ``Worker`` calls in a loop. It leases due schedules
(``store.claim_schedules``: one holder at a time), and for each scheduled time:

1. decides the outcome (overlap and catch-up policies) and records it as the time's ONE
   ``ScheduleRun`` (keyed by ``(schedule_id, scheduled_for)``: the first record wins, a
   later holder adopts it). A ``started`` run names the execution id it will create;
2. creates that execution with that id and the idempotency key
   ``schedule:<id>:<scheduled_for>`` in the same transaction as the run record
   (``store.fire_schedule_times``: every due time of a claimed batch of schedules in ONE
   transaction, so a batch costs one commit; an idempotency hit returns the first one);
3. moves ``next_fire_at`` on and drops the lease (``release_schedule``, fenced).

A process killed anywhere in between leaves a lease that expires; the next holder redoes
the same time and finds either the recorded run or the existing execution. So a time
starts at most one execution, and (within the catch-up policy) at least one. A holder
keeps a schedule for the engine's ``lease_for``: a crashed holder's times are redone
that long after the crash.

Missed times (downtime longer than ``MISS_GRACE``) follow ``catchup``: ``none`` skips
them, ``latest`` fires only the latest one within ``catchup_window``, ``all`` fires every
one within the window, in order. Times older than the window are dropped without a run
row each (one ``schedule.skipped`` event says how many).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from flowmonkey.cron import cached_spec
from flowmonkey.engine.creation import create_execution, prepare_execution
from flowmonkey.engine.schedule_times import fire_times, first_fire_at, jitter_for, render_input
from flowmonkey.engine.terminal import cancel as cancel_execution
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution
from flowmonkey.model.schedules import Schedule, ScheduleRun, schedule_key

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime

__all__ = [
    "MISS_GRACE",
    "FireReport",
    "first_fire_at",
    "fire_due",
    "fire_times",
    "jitter_for",
    "render_input",
    "run_one",
]

log = logging.getLogger("flowmonkey.schedules")

MISS_GRACE = timedelta(seconds=60)
"""A time handled later than this after it was due counts as missed (catch-up applies)."""
MAX_KEY_TTL = timedelta(days=7)
"""Idempotency window of a fire's key (clamped to the engine's ``max_idempotency_ttl``);
the run record, not the key, is what makes a time fire once after that."""
CLAIM_BATCH = 50
"""Schedules leased per claim (see ``fire_due``): each claimed batch costs a claim, one
fire transaction and a release, so larger batches cost fewer commits (measured with 100
every-second schedules and two workers: 50 halves the lag of 20 on both stores), while
more due schedules than one batch are still shared out between the workers."""
FIRE_CONCURRENCY = 16
"""Schedules one ``fire_due`` call plans and decides at once (their reads overlap)."""
MAX_TIMES_PER_TICK = 1000
"""Scheduled times one holder handles per lease; the rest wait for the next tick."""
_TERMINAL = frozenset({"completed", "failed", "cancelled"})
_T = TypeVar("_T")


@dataclass(slots=True)
class FireReport:
    """What one ``fire_due`` call did."""

    created: list[str]
    """Execution ids created (runnable now)."""
    wake_at: datetime | None = None
    """The earliest jittered fire time seen that was not due yet (sleep until then)."""
    handled: list[Schedule] = field(default_factory=list)
    """Schedules of the current batch whose due times were handled (released together)."""
    released: int = 0
    """Schedules handled and released by this call."""


async def fire_due(rt: Runtime, *, owner: str, limit: int = 100) -> FireReport:
    """Lease the due schedules and fire their due times (see the module docstring).

    Leases are taken ``CLAIM_BATCH`` schedules at a time, so when many are due at once the
    workers share them out (each claims the next batch as soon as it is done with one)
    instead of the first to wake taking them all. The due times of a claimed batch are
    fired together: one ``store.fire_schedule_times`` transaction per round (the k-th due
    time of every schedule of the batch), so a batch costs one commit, not one per time.
    """
    now = rt.clock.now()
    report = FireReport(created=[])
    taken = 0
    seen: set[str] = set()
    while taken < limit:
        batch = min(CLAIM_BATCH, limit - taken)
        claimed = await rt.store.claim_schedules(
            owner=owner, now=now, lease_for=rt.options.lease_for, limit=batch
        )
        taken += len(claimed)
        fresh = {schedule.id for schedule in claimed} - seen
        seen |= fresh
        await _fire_batch(rt, claimed, now=now, report=report)
        if report.handled:
            # One transaction moves the handled schedules on and drops their leases
            # (fenced: a schedule saved meanwhile, e.g. paused, keeps what was saved).
            await rt.store.release_schedules(report.handled, owner=owner)
            report.released += len(report.handled)
            report.handled.clear()
        if len(claimed) < batch or not fresh:
            # All due ones taken; or only schedules already handled in this call came
            # back (a buffered time waiting for its previous run stays "due").
            break
    return report


@dataclass(slots=True)
class _Plan:
    """The due times of one leased schedule, and where its ``next_fire_at`` goes."""

    state: Schedule
    due: list[datetime]
    reasons: list[str | None]
    cursor: datetime | None


@dataclass(slots=True)
class _Decision:
    """What one scheduled time will record (and the execution it will create)."""

    run: ScheduleRun
    execution: Execution | None = None
    event: Event | None = None


async def _fire_batch(
    rt: Runtime, claimed: list[Schedule], *, now: datetime, report: FireReport
) -> None:
    """Fire the due times of ``claimed`` schedules, round by round (each schedule's times
    stay in order); schedules fired without error go to ``report.handled``."""
    gate = asyncio.Semaphore(FIRE_CONCURRENCY)
    failed: set[str] = set()

    async def guarded(schedule: Schedule, work: Awaitable[_T]) -> _T | None:
        async with gate:
            try:
                return await work
            except Exception:
                # Not released: the lease expires and the next holder redoes these times
                # (exactly once: the recorded runs and the executions' keys say what was done).
                failed.add(schedule.id)
                log.exception(
                    "firing schedule %s failed; retried after its lease expires", schedule.id
                )
                return None

    # Schedules are independent: plan them side by side (a store with a connection pool
    # overlaps the round trips of a buffered run or an overlap check).
    found = await asyncio.gather(*(guarded(s, _plan(rt, s, now, report)) for s in claimed))
    plans = [plan for plan in found if plan is not None]
    index = 0
    while True:
        current = [p for p in plans if p.state.id not in failed and index < len(p.due)]
        if not current:
            break
        decided = await asyncio.gather(
            *(
                guarded(p.state, _decide(rt, p.state, p.due[index], now, p.reasons[index],
                                         overlap=p.state.overlap))
                for p in current
            )
        )  # fmt: skip
        ready = [(p, d) for p, d in zip(current, decided, strict=True) if d is not None]
        fired = await _fire_round(rt, ready, guarded)
        await asyncio.gather(
            *(
                guarded(p.state, _settle(rt, p.state, d, run, created, now, report))
                for (p, d), (run, created) in fired
            )
        )
        index += 1
    for plan in plans:
        if plan.state.id not in failed:
            plan.state.next_fire_at = plan.cursor
            report.handled.append(plan.state)


async def _fire_round(
    rt: Runtime,
    ready: list[tuple[_Plan, _Decision]],
    guarded: Callable[[Schedule, Awaitable[Any]], Awaitable[Any]],
) -> list[tuple[tuple[_Plan, _Decision], tuple[ScheduleRun, bool]]]:
    """Record and create one round's times in one transaction; each with its outcome.

    If that transaction fails, nothing of it was stored, so the times are fired again one
    transaction each: one schedule whose time cannot be stored (its lease then expires and
    it is retried) does not hold back the others of its batch.
    """
    if not ready:
        return []
    fires = [(d.run, d.execution, () if d.event is None else [d.event]) for _, d in ready]
    try:
        return list(zip(ready, await rt.store.fire_schedule_times(fires), strict=True))
    except Exception:
        log.warning(
            "firing %d schedule time(s) in one transaction failed; firing them one by one",
            len(ready),
            exc_info=True,
        )
    pairs = zip(ready, fires, strict=True)
    singles = await asyncio.gather(
        *(guarded(p.state, rt.store.fire_schedule_time(*fire)) for (p, _), fire in pairs)
    )
    return [(pair, one) for pair, one in zip(ready, singles, strict=True) if one is not None]


async def _previous_running(rt: Runtime, schedule: Schedule) -> bool:
    if schedule.last_execution_id is None:
        return False
    found = await rt.store.get(schedule.last_execution_id, history=False)
    return found is not None and str(found.status) not in _TERMINAL


async def _plan(rt: Runtime, schedule: Schedule, now: datetime, report: FireReport) -> _Plan:
    """Start a buffered run that may start now, and list the due times (with the reason
    each is skipped, if it is) of a leased schedule."""
    state = replace(schedule)
    if state.buffered_for is not None and not await _previous_running(rt, state):
        run = ScheduleRun(
            schedule_id=state.id,
            scheduled_for=state.buffered_for,
            fired_at=now,
            outcome="started",
            execution_id=str(uuid.uuid4()),
        )
        await rt.store.update_schedule_run(run)
        await _start(rt, state, run, report)
        state.buffered_for = None
    spec = cached_spec(state.cron, state.timezone)
    due: list[datetime] = []
    cursor = state.next_fire_at
    dropped = 0
    if cursor is not None and not state.paused:
        oldest = now - max(state.catchup_window, MISS_GRACE)
        if cursor < oldest:  # times before the window: dropped without a row each
            probe: datetime | None = cursor
            while probe is not None and probe < oldest and dropped < MAX_TIMES_PER_TICK:
                dropped += 1
                probe = spec.next_after(probe)
            cursor = spec.next_after(oldest - timedelta(microseconds=1))
        while cursor is not None and len(due) < MAX_TIMES_PER_TICK:
            if state.end_at is not None and cursor > state.end_at:
                cursor = None
                break
            fire_at = cursor + jitter_for(state, cursor)
            if fire_at > now:
                if report.wake_at is None or fire_at < report.wake_at:
                    report.wake_at = fire_at
                break
            due.append(cursor)
            cursor = spec.next_after(cursor)
    if dropped:
        _emit(
            rt,
            "schedule.skipped",
            state,
            None,
            now,
            {"count": dropped, "reason": "outside_catchup_window"},
        )
    reasons: list[str | None] = []
    for index, scheduled_for in enumerate(due):
        missed = now - scheduled_for > MISS_GRACE
        later = index < len(due) - 1
        reason = None
        if missed and state.catchup == "none":
            reason = "missed"
        elif missed and state.catchup == "latest" and later:
            reason = "catchup"
        reasons.append(reason)
    return _Plan(state, due, reasons, cursor)


async def _handle_time(
    rt: Runtime,
    state: Schedule,
    scheduled_for: datetime,
    now: datetime,
    reason: str | None,
    report: FireReport,
    *,
    overlap: str,
) -> ScheduleRun:
    """Decide, record (first record wins) and carry out one scheduled time."""
    decision = await _decide(rt, state, scheduled_for, now, reason, overlap=overlap)
    events = () if decision.event is None else [decision.event]
    run, created = await rt.store.fire_schedule_time(decision.run, decision.execution, events)
    return await _settle(rt, state, decision, run, created, now, report)


async def _decide(
    rt: Runtime,
    state: Schedule,
    scheduled_for: datetime,
    now: datetime,
    reason: str | None,
    *,
    overlap: str,
) -> _Decision:
    """The outcome of one scheduled time (overlap policy) and, when it starts a run, the
    execution to create with its run record."""
    outcome = "started"
    if reason is None and overlap != "allow" and await _previous_running(rt, state):
        if overlap == "skip":
            outcome, reason = "skipped", "overlap"
        elif overlap == "buffer_one":
            if state.buffered_for is None:
                outcome = "buffered"
            else:
                outcome, reason = "skipped", "buffer_full"
        elif overlap == "cancel_previous" and state.last_execution_id is not None:
            await cancel_execution(
                rt,
                state.last_execution_id,
                source="schedule",
                reason=f"schedule {state.id} fired again",
            )
    if reason is not None:
        outcome = "skipped"
    candidate = ScheduleRun(
        schedule_id=state.id,
        scheduled_for=scheduled_for,
        fired_at=now,
        outcome=outcome,
        execution_id=str(uuid.uuid4()) if outcome == "started" else None,
        reason=reason,
    )
    if outcome != "started":
        return _Decision(candidate)
    # The run record and its execution are written in ONE transaction.
    execution, created_event, _ = await prepare_execution(
        rt, **_execution_options(state, candidate)
    )
    return _Decision(candidate, execution, created_event)


async def _settle(
    rt: Runtime,
    state: Schedule,
    decision: _Decision,
    run: ScheduleRun,
    created: bool,
    now: datetime,
    report: FireReport,
) -> ScheduleRun:
    """Carry out what was recorded for one time (``run``: the stored run, ours or the
    first one; ``created``: whether our execution was created with it)."""
    scheduled_for = run.scheduled_for
    if created and decision.execution is not None and decision.event is not None:
        state.last_execution_id = decision.execution.id
        rt.bus.emit([decision.event])
        await rt.notify_runnable(decision.execution.id)
        _fired(rt, state, run, decision.execution, report)
        return run
    if run.outcome == "started":
        assert run.execution_id is not None
        # Handled before (a backfill again, a holder that died mid-fire with an older
        # flowmonkey, or a key held elsewhere): make sure the run's execution exists.
        existing = await rt.store.get(run.execution_id, history=False)
        if existing is not None:
            state.last_execution_id = existing.id
            return run
        await _start(rt, state, run, report)
    elif run.outcome == "buffered":
        state.buffered_for = run.scheduled_for
        _emit(
            rt,
            "schedule.skipped",
            state,
            None,
            now,
            {"scheduled_for": scheduled_for.isoformat(), "outcome": "buffered"},
        )
    else:
        _emit(
            rt,
            "schedule.skipped",
            state,
            None,
            now,
            {
                "scheduled_for": scheduled_for.isoformat(),
                "outcome": "skipped",
                "reason": run.reason,
            },
        )
    return run


def _execution_options(state: Schedule, run: ScheduleRun) -> dict[str, Any]:
    """What the execution of a scheduled time is created with (the same every retry)."""
    return {
        "flow_id": state.flow_id,
        "context": render_input(state.input, state, run.scheduled_for, run.fired_at),
        "tenant_id": state.tenant_id,
        "version": state.version,
        "idempotency_key": schedule_key(state.id, run.scheduled_for),
        "idempotency_ttl": MAX_KEY_TTL,
        "metadata": {"schedule_id": state.id, "scheduled_for": run.scheduled_for.isoformat()},
        "execution_id": run.execution_id,
    }


async def _start(rt: Runtime, state: Schedule, run: ScheduleRun, report: FireReport) -> None:
    """Create a recorded run's execution (same id and key on every retry: at most one)."""
    assert run.execution_id is not None
    options = _execution_options(state, run)
    result, _ = await create_execution(rt, **options, lease_self=False)
    state.last_execution_id = result.execution.id
    if result.created:
        _fired(rt, state, run, result.execution, report)


def _fired(
    rt: Runtime, state: Schedule, run: ScheduleRun, execution: Execution, report: FireReport
) -> None:
    report.created.append(execution.id)
    lag = (execution.created_at - run.scheduled_for).total_seconds()
    _emit(
        rt,
        "schedule.fired",
        state,
        execution.id,
        execution.created_at,
        {"scheduled_for": run.scheduled_for.isoformat(), "lag_seconds": lag},
    )


def _emit(
    rt: Runtime,
    kind: str,
    state: Schedule,
    execution_id: str | None,
    at: datetime,
    data: dict[str, Any],
) -> None:
    rt.bus.emit(
        [Event(kind, execution_id, at, {"schedule_id": state.id, **data}, 0, state.tenant_id)]
    )


async def run_one(
    rt: Runtime,
    schedule_id: str,
    times: list[datetime] | None,
    *,
    owner: str,
    overlap: str | None = None,
) -> list[ScheduleRun]:
    """Run now (``times`` None: the current time) or backfill ``times``, in order, each
    exactly once (an already handled time keeps its first run). Holds the schedule's
    lease meanwhile; ``LookupError`` when another process holds it right now."""
    now = rt.clock.now()
    claimed = await rt.store.claim_schedules(
        owner=owner, now=now, lease_for=rt.options.lease_for, limit=1, schedule_id=schedule_id
    )
    if not claimed:
        raise LookupError(f'schedule "{schedule_id}" is being fired by another process')
    state = claimed[0]
    report = FireReport(created=[])
    runs = []
    try:
        for scheduled_for in times if times is not None else [now]:
            runs.append(
                await _handle_time(
                    rt, state, scheduled_for, now, None, report, overlap=overlap or state.overlap
                )
            )
    finally:
        await rt.store.release_schedule(state, owner=owner)
    return runs

"""Schedule storage: the ``MemoryStore`` mixin and what the SQL mixins share
(``schedules_sql.py``); see ``model/schedules``.

The definition of a schedule is kept as JSON (``spec``); what firing changes is kept in
columns (``next_fire_at``, ``last_execution_id``, ``buffered_for``) next to the lease,
so the process that holds the lease writes only those, fenced by its owner id. Saving a
schedule (PATCH, pause, unpause) drops any lease: a fire in flight then fails its fenced
release and its stale ``next_fire_at`` is never written.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from flowmonkey import errors
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution
from flowmonkey.model.schedules import Schedule, ScheduleRun
from flowmonkey.stores.memory_index import Probe, SortedKeys

__all__ = [
    "MemorySchedules",
    "RUN_COLUMNS",
    "SCHEDULE_COLUMNS",
    "decode_run",
    "decode_schedule",
    "encode_spec",
    "exists_error",
]

_STATE = ("next_fire_at", "last_execution_id", "buffered_for")
_COLS = (
    "id, tenant_id, spec, paused, next_fire_at, last_execution_id, buffered_for, "
    "created_at, updated_at"
)
_RUN_COLS = "schedule_id, scheduled_for, fired_at, outcome, execution_id, reason"


def _spec(schedule: Schedule) -> str:
    data = schedule.to_dict()
    for name in _STATE:
        data.pop(name)
    return orjson.dumps(data).decode()


def _schedule(row: tuple[Any, ...], to_dt: Callable[[Any], datetime | None]) -> Schedule:
    data = orjson.loads(row[2])
    data.update(
        id=row[0],
        tenant_id=row[1],
        paused=bool(row[3]),
        next_fire_at=to_dt(row[4]),
        last_execution_id=row[5],
        buffered_for=to_dt(row[6]),
        created_at=to_dt(row[7]),
        updated_at=to_dt(row[8]),
    )
    return Schedule.from_dict(data)


def _run(row: tuple[Any, ...], to_dt: Callable[[Any], datetime | None]) -> ScheduleRun:
    scheduled, fired = to_dt(row[1]), to_dt(row[2])
    assert scheduled is not None and fired is not None
    return ScheduleRun(
        schedule_id=row[0],
        scheduled_for=scheduled,
        fired_at=fired,
        outcome=row[3],
        execution_id=row[4],
        reason=row[5],
    )


def _exists(schedule_id: str) -> errors.AlreadyExists:
    return errors.AlreadyExists(f'schedule "{schedule_id}" already exists')


class MemorySchedules:
    """Schedules of ``MemoryStore``."""

    _schedules: dict[str, Schedule]
    _schedule_leases: dict[str, tuple[str, datetime]]
    _schedule_runs: dict[tuple[str, datetime], ScheduleRun]
    _schedule_fire: SortedKeys
    """Unpaused schedules by ``(next_fire_at, id)``: the due ones are read from the front."""
    _schedule_fire_at: dict[str, datetime]
    _schedule_buffered: set[str]
    """Unpaused schedules holding a buffered fire (due whatever the time)."""

    def _init_schedules(self, probe: Probe) -> None:
        self._schedules = {}
        self._schedule_leases = {}
        self._schedule_runs = {}
        self._schedule_fire = SortedKeys(probe)
        self._schedule_fire_at = {}
        self._schedule_buffered = set()

    def _index_schedule(self, schedule_id: str) -> None:
        # Called after every write of a schedule: its key follows its state.
        fire = self._schedule_fire
        old = self._schedule_fire_at.pop(schedule_id, None)
        if old is not None:
            fire.discard((old, schedule_id))
        self._schedule_buffered.discard(schedule_id)
        stored = self._schedules.get(schedule_id)
        if stored is None or stored.paused:
            return
        if stored.next_fire_at is not None:
            self._schedule_fire_at[schedule_id] = stored.next_fire_at
            fire.add((stored.next_fire_at, schedule_id))
        if stored.buffered_for is not None:
            self._schedule_buffered.add(schedule_id)

    async def create_schedule(self, schedule: Schedule) -> None:
        """Store a new schedule (``AlreadyExists`` if the id is taken)."""
        if schedule.id in self._schedules:
            raise _exists(schedule.id)
        self._schedules[schedule.id] = replace(schedule, input=dict(schedule.input))
        self._index_schedule(schedule.id)

    async def save_schedule(self, schedule: Schedule) -> bool:
        """Replace a schedule (definition and state) and drop its lease."""
        if schedule.id not in self._schedules:
            return False
        self._schedules[schedule.id] = replace(schedule, input=dict(schedule.input))
        self._schedule_leases.pop(schedule.id, None)
        self._index_schedule(schedule.id)
        return True

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """One schedule, or ``None``."""
        found = self._schedules.get(schedule_id)
        return None if found is None else replace(found, input=dict(found.input))

    async def list_schedules(
        self, *, tenant_id: str | None = None, after: str | None = None, limit: int | None = None
    ) -> builtins.list[Schedule]:
        """Schedules by id (of one tenant when given), after ``after``, at most ``limit``."""
        found = [
            replace(s, input=dict(s.input))
            for sid, s in sorted(self._schedules.items())
            if (tenant_id is None or s.tenant_id == tenant_id) and (after is None or sid > after)
        ]
        return found if limit is None else found[:limit]

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule and its runs."""
        self._schedule_leases.pop(schedule_id, None)
        for key in [k for k in self._schedule_runs if k[0] == schedule_id]:
            del self._schedule_runs[key]
        found = self._schedules.pop(schedule_id, None) is not None
        self._index_schedule(schedule_id)
        return found

    async def claim_schedules(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        limit: int,
        schedule_id: str | None = None,
    ) -> builtins.list[Schedule]:
        """Lease due schedules to ``owner`` (or the one ``schedule_id``, due or not)."""
        if schedule_id is not None:
            due = [schedule_id] if schedule_id in self._schedules else []
        else:
            # The due ones only: those with a buffered fire, then the index's front.
            due = list(self._schedule_buffered)
            for at, sid in self._schedule_fire.ascending():
                if at > now:
                    break
                due.append(sid)
            due = sorted(set(due))
        out: builtins.list[Schedule] = []
        for sid in due:
            if len(out) >= limit:
                break
            schedule = self._schedules[sid]
            lease = self._schedule_leases.get(sid)
            if lease is not None and lease[0] != owner and lease[1] > now:
                continue
            self._schedule_leases[sid] = (owner, now + lease_for)
            out.append(replace(schedule, input=dict(schedule.input)))
        return out

    async def release_schedule(self, schedule: Schedule, *, owner: str) -> bool:
        """Write the firing state of a leased schedule and drop the lease (fenced)."""
        lease = self._schedule_leases.get(schedule.id)
        stored = self._schedules.get(schedule.id)
        if lease is None or lease[0] != owner or stored is None:
            return False
        for name in _STATE:
            setattr(stored, name, getattr(schedule, name))
        del self._schedule_leases[schedule.id]
        self._index_schedule(schedule.id)
        return True

    async def record_schedule_run(self, run: ScheduleRun) -> ScheduleRun:
        """Record a run unless that time is recorded; returns the stored run."""
        return self._schedule_runs.setdefault((run.schedule_id, run.scheduled_for), run)

    async def fire_schedule_time(
        self, run: ScheduleRun, execution: Execution | None, events: Sequence[Event] = ()
    ) -> tuple[ScheduleRun, bool]:
        """Record ``run`` and create its execution at once (see ``Store``)."""
        key = (run.schedule_id, run.scheduled_for)
        existing = self._schedule_runs.get(key)
        if existing is not None:
            return existing, False
        created = False
        if execution is not None:
            # ``create`` never suspends here, so nothing runs in between.
            stored, created = await self.create(execution, events)  # type: ignore[attr-defined]
            if not created:
                run = replace(run, execution_id=stored.id)
        self._schedule_runs[key] = run
        return run, created

    async def fire_schedule_times(
        self, items: Sequence[tuple[ScheduleRun, Execution | None, Sequence[Event]]]
    ) -> builtins.list[tuple[ScheduleRun, bool]]:
        """``fire_schedule_time`` of each, in order, all or nothing (nothing suspends in
        between, and the one way a fire fails, a taken execution id, is checked first)."""
        runs = self._schedule_runs
        ids = [
            ex.id
            for run, ex, _ in items
            if ex is not None and (run.schedule_id, run.scheduled_for) not in runs
        ]
        rows: Any = self._rows  # type: ignore[attr-defined]
        taken = [i for i in ids if i in rows] or ([] if len(set(ids)) == len(ids) else ids)
        if taken:
            raise errors.StoreError(f'execution id "{taken[0]}" already exists')
        return [await self.fire_schedule_time(run, ex, events) for run, ex, events in items]

    async def release_schedules(self, schedules: Sequence[Schedule], *, owner: str) -> int:
        """``release_schedule`` of many in one transaction; how many were still held."""
        return sum([await self.release_schedule(s, owner=owner) for s in schedules])

    async def update_schedule_run(self, run: ScheduleRun) -> None:
        """Overwrite the run of ``(schedule_id, scheduled_for)`` (a buffered run started)."""
        self._schedule_runs[(run.schedule_id, run.scheduled_for)] = run

    async def list_schedule_runs(
        self, schedule_id: str, *, limit: int = 50, before: datetime | None = None
    ) -> builtins.list[ScheduleRun]:
        """Runs of one schedule, newest scheduled time first (before ``before``)."""
        runs = [
            r
            for k, r in self._schedule_runs.items()
            if k[0] == schedule_id and (before is None or k[1] < before)
        ]
        runs.sort(key=lambda r: r.scheduled_for, reverse=True)
        return runs[:limit]

    async def next_schedule_time(self) -> datetime | None:
        """The earliest ``next_fire_at`` of unpaused schedules (``None``: none)."""
        first = next(self._schedule_fire.ascending(), None)
        return None if first is None else first[0]


RUN_COLUMNS = _RUN_COLS
SCHEDULE_COLUMNS = _COLS
decode_run = _run
decode_schedule = _schedule
encode_spec = _spec
exists_error = _exists

"""``Schedules``: the Python API of cron schedules (what the HTTP routes and CLI call).

    schedules = Schedules(engine)            # or engine.schedules
    await schedules.create(flow_id="report", cron="0 6 * * *", timezone="Europe/Berlin")
    await schedules.trigger("nightly")       # run now
    await schedules.backfill("nightly", start, end)

Every definition is validated before anything is stored; every problem is listed at once
in ``InvalidSchedule.details`` (``[{"path", "message"}]``).
"""

from __future__ import annotations

import builtins
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.cron import CronError, CronSpec, zone
from flowmonkey.durations import parse_datetime, parse_duration
from flowmonkey.engine.lookup import get_flow
from flowmonkey.engine.scheduling import fire_times, first_fire_at, run_one
from flowmonkey.model.schedules import (
    CATCHUP_POLICIES,
    OVERLAP_POLICIES,
    Schedule,
    ScheduleRun,
)

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime

__all__ = ["MAX_BACKFILL", "Schedules"]

MAX_BACKFILL = 10_000
"""Most scheduled times one backfill may start."""
_FIELDS = {
    "id",
    "flow_id",
    "version",
    "cron",
    "timezone",
    "input",
    "overlap",
    "catchup",
    "catchup_window",
    "jitter",
    "start_at",
    "end_at",
    "paused",
    "tenant_id",
}
_EDITABLE = _FIELDS - {"id", "tenant_id"}


def _problem(problems: list[dict[str, str]], path: str, message: str) -> None:
    problems.append({"path": path, "message": message})


def build_schedule(
    values: dict[str, Any], *, now: datetime, base: Schedule | None = None
) -> Schedule:
    """A validated ``Schedule`` from JSON-ish ``values`` (over ``base`` for a PATCH).

    Raises ``InvalidSchedule`` listing every problem (the flow's existence is checked by
    ``Schedules``, which can reach the store).
    """
    problems: list[dict[str, str]] = []
    allowed = _FIELDS if base is None else _EDITABLE
    for key in values:
        if key not in allowed:
            _problem(problems, key, "unknown field" if key not in _FIELDS else "cannot be changed")
    merged: dict[str, Any] = {} if base is None else base.to_dict()
    merged.update({k: v for k, v in values.items() if k in allowed})
    for name in ("flow_id", "cron"):
        if not isinstance(merged.get(name), str) or not merged.get(name):
            _problem(problems, name, "required (a non-empty string)")
    if (
        "id" in merged
        and merged["id"] is not None
        and (not isinstance(merged["id"], str) or not 1 <= len(merged["id"]) <= 200)
    ):
        _problem(problems, "id", "a string of 1 to 200 characters")
    if merged.get("version") is not None and not isinstance(merged["version"], str):
        _problem(problems, "version", "a string")
    timezone = merged.get("timezone", "UTC")
    if not isinstance(timezone, str):
        _problem(problems, "timezone", "an IANA time zone name such as Europe/Berlin")
        timezone = "UTC"
    try:
        zone(timezone)
    except CronError as exc:
        _problem(problems, "timezone", str(exc))
        timezone_ok = False
    else:
        timezone_ok = True
    if isinstance(merged.get("cron"), str):
        try:
            CronSpec(merged["cron"], timezone if timezone_ok else "UTC")
        except CronError as exc:
            _problem(problems, "cron", str(exc))
    if merged.get("overlap", "skip") not in OVERLAP_POLICIES:
        _problem(problems, "overlap", f"one of {', '.join(OVERLAP_POLICIES)}")
    if merged.get("catchup", "latest") not in CATCHUP_POLICIES:
        _problem(problems, "catchup", f"one of {', '.join(CATCHUP_POLICIES)}")
    if not isinstance(merged.get("input") or {}, dict):
        _problem(problems, "input", "an object")
    if not isinstance(merged.get("paused", False), bool):
        _problem(problems, "paused", "true or false")
    durations: dict[str, timedelta] = {}
    for name, default in (("catchup_window", "1h"), ("jitter", "0s")):
        try:
            durations[name] = parse_duration(merged.get(name, default), field=name)
            if durations[name] < timedelta(0):
                _problem(problems, name, "must not be negative")
        except ValueError as exc:
            _problem(problems, name, str(exc))
    times: dict[str, datetime | None] = {}
    for name in ("start_at", "end_at"):
        raw = merged.get(name)
        try:
            times[name] = None if raw is None else parse_datetime(raw, field=name)
        except ValueError as exc:
            _problem(problems, name, str(exc))
            times[name] = None
    start, end = times["start_at"], times["end_at"]
    if start is not None and end is not None and end <= start:
        _problem(problems, "end_at", "must be after start_at")
    if problems:
        raise errors.InvalidSchedule(
            "invalid schedule: " + "; ".join(f"{p['path']}: {p['message']}" for p in problems),
            details=problems,
        )
    fields: dict[str, Any] = {
        "flow_id": merged["flow_id"],
        "version": merged.get("version"),
        "cron": merged["cron"],
        "timezone": timezone,
        "input": dict(merged.get("input") or {}),
        "overlap": merged.get("overlap", "skip"),
        "catchup": merged.get("catchup", "latest"),
        "catchup_window": durations["catchup_window"],
        "jitter": durations["jitter"],
        "start_at": start,
        "end_at": end,
        "paused": merged.get("paused", False),
        "updated_at": now,
    }
    if base is not None:
        schedule = replace(base, **fields)
    else:
        extra = {"id": merged["id"]} if merged.get("id") else {}
        schedule = Schedule(**fields, **extra, tenant_id=merged.get("tenant_id"), created_at=now)
    timing_changed = base is None or any(
        getattr(base, k) != getattr(schedule, k) for k in ("cron", "timezone", "start_at", "end_at")
    )
    if timing_changed or (base is not None and base.paused and not schedule.paused):
        # Start counting from now: unpausing does not fire the times missed while paused.
        schedule.next_fire_at = first_fire_at(schedule, now)
    return schedule


class Schedules:
    """Create, change and fire schedules of one engine's store."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    async def _check_flow(self, schedule: Schedule) -> None:
        try:
            await get_flow(self._rt, schedule.flow_id, schedule.version)
        except errors.FlowNotFound as exc:
            problem = {"path": "flow_id", "message": str(exc)}
            raise errors.InvalidSchedule(f"invalid schedule: {exc}", details=[problem]) from None

    async def create(self, **values: Any) -> Schedule:
        """Validate and store a new schedule (JSON-ish values: durations as ``"1h"``,
        times as ISO 8601). Raises ``InvalidSchedule`` or ``AlreadyExists``."""
        schedule = build_schedule(values, now=self._rt.clock.now())
        await self._check_flow(schedule)
        await self._rt.store.create_schedule(schedule)
        return schedule

    async def get(self, schedule_id: str) -> Schedule:
        """One schedule (``ScheduleNotFound``)."""
        found = await self._rt.store.get_schedule(schedule_id)
        if found is None:
            raise errors.ScheduleNotFound(f'schedule "{schedule_id}" not found')
        return found

    async def list(
        self, *, tenant_id: str | None = None, after: str | None = None, limit: int | None = None
    ) -> builtins.list[Schedule]:
        """Schedules by id (of one tenant when given); a page of them with ``after`` (the
        last id of the previous page) and ``limit``."""
        return await self._rt.store.list_schedules(tenant_id=tenant_id, after=after, limit=limit)

    async def update(self, schedule_id: str, **changes: Any) -> Schedule:
        """Change fields of a schedule (``id`` and ``tenant_id`` stay)."""
        base = await self.get(schedule_id)
        schedule = build_schedule(changes, now=self._rt.clock.now(), base=base)
        await self._check_flow(schedule)
        if not await self._rt.store.save_schedule(schedule):
            raise errors.ScheduleNotFound(f'schedule "{schedule_id}" not found')
        return schedule

    async def delete(self, schedule_id: str) -> None:
        """Delete a schedule and its runs (``ScheduleNotFound``)."""
        if not await self._rt.store.delete_schedule(schedule_id):
            raise errors.ScheduleNotFound(f'schedule "{schedule_id}" not found')

    async def pause(self, schedule_id: str) -> Schedule:
        """Stop firing until ``unpause``."""
        return await self.update(schedule_id, paused=True)

    async def unpause(self, schedule_id: str) -> Schedule:
        """Fire again from the next time after now (times missed while paused are not
        caught up)."""
        return await self.update(schedule_id, paused=False)

    async def trigger(self, schedule_id: str, *, overlap: str | None = None) -> ScheduleRun:
        """Run now, once (``overlap`` overrides the schedule's policy for this run)."""
        await self.get(schedule_id)
        _check_overlap(overlap)
        [run] = await self._fire(schedule_id, None, overlap)
        return run

    async def backfill(
        self, schedule_id: str, start: datetime, end: datetime, *, overlap: str | None = None
    ) -> builtins.list[ScheduleRun]:
        """Fire every scheduled time in ``[start, end]``, in order, each exactly once
        (default overlap for a backfill: ``allow``)."""
        schedule = await self.get(schedule_id)
        _check_overlap(overlap)
        if end < start:
            raise errors.InvalidSchedule(
                "invalid backfill: end is before start",
                details=[{"path": "end", "message": "before start"}],
            )
        times = fire_times(schedule, start, end)
        if len(times) > MAX_BACKFILL:
            raise errors.InvalidSchedule(
                f"invalid backfill: {len(times)} times, at most {MAX_BACKFILL} per call",
                details=[{"path": "end", "message": f"more than {MAX_BACKFILL} times"}],
            )
        return await self._fire(schedule_id, times, overlap or "allow")

    async def _fire(
        self, schedule_id: str, times: builtins.list[datetime] | None, overlap: str | None
    ) -> builtins.list[ScheduleRun]:
        try:
            return await run_one(
                self._rt, schedule_id, times, owner=self._rt.lease_owner(), overlap=overlap
            )
        except LookupError as exc:
            raise errors.StoreError(str(exc), code="SCHEDULE_BUSY") from None

    async def runs(
        self, schedule_id: str, *, limit: int = 50, before: datetime | None = None
    ) -> builtins.list[ScheduleRun]:
        """The runs history, newest scheduled time first; with ``before`` (the last time
        of the previous page), the runs scheduled before it."""
        return await self._rt.store.list_schedule_runs(schedule_id, limit=limit, before=before)

    def next_times(self, schedule: Schedule, count: int = 5) -> builtins.list[datetime]:
        """The next ``count`` scheduled times from ``next_fire_at`` on (end_at respected)."""
        if schedule.next_fire_at is None:
            return []
        out = [schedule.next_fire_at]
        spec = CronSpec(schedule.cron, schedule.timezone)
        for t in spec.after(schedule.next_fire_at):
            if len(out) >= count or (schedule.end_at is not None and t > schedule.end_at):
                break
            out.append(t)
        return out


def _check_overlap(overlap: str | None) -> None:
    if overlap is not None and overlap not in OVERLAP_POLICIES:
        raise errors.InvalidSchedule(
            f"invalid overlap {overlap!r}",
            details=[{"path": "overlap", "message": f"one of {', '.join(OVERLAP_POLICIES)}"}],
        )

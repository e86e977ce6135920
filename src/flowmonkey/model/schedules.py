"""Schedules (cron triggers) and their runs: the stored records.

A ``Schedule`` says which flow to start, when (a cron expression in an IANA zone) and what
to do when runs overlap or were missed. ``next_fire_at`` is the next scheduled time not
yet handled; whoever holds the schedule's lease fires it and moves it on. Every handled
time leaves one ``ScheduleRun`` (``started``, ``skipped`` or ``buffered``), keyed by
``(schedule_id, scheduled_for)`` so two processes can never record it twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flowmonkey.durations import format_duration, parse_duration

__all__ = [
    "CATCHUP_POLICIES",
    "OVERLAP_POLICIES",
    "RUN_OUTCOMES",
    "Schedule",
    "ScheduleRun",
    "schedule_key",
]

OVERLAP_POLICIES = ("skip", "buffer_one", "allow", "cancel_previous")
CATCHUP_POLICIES = ("none", "latest", "all")
RUN_OUTCOMES = ("started", "skipped", "buffered")


def schedule_key(schedule_id: str, scheduled_for: datetime) -> str:
    """The idempotency key of the execution a scheduled time starts.

    Every process that fires ``scheduled_for`` creates with this key, so the store's
    idempotent create lets exactly one execution through, crashes included.
    """
    return f"schedule:{schedule_id}:{scheduled_for.isoformat()}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


@dataclass(slots=True, kw_only=True)
class Schedule:
    """A cron trigger of one flow. Times are UTC-aware datetimes."""

    id: str = field(default_factory=lambda: "sch_" + uuid.uuid4().hex[:16])
    flow_id: str
    version: str | None = None
    cron: str
    timezone: str = "UTC"
    input: dict[str, Any] = field(default_factory=dict)
    """The execution's input; strings may use ``{{ schedule.id }}`` and
    ``{{ schedule.scheduled_for }}``."""
    overlap: str = "skip"
    catchup: str = "latest"
    catchup_window: timedelta = timedelta(hours=1)
    jitter: timedelta = timedelta(0)
    start_at: datetime | None = None
    end_at: datetime | None = None
    paused: bool = False
    tenant_id: str | None = None
    created_at: datetime
    updated_at: datetime
    next_fire_at: datetime | None = None
    """The next scheduled time not yet handled (``None``: never fires again)."""
    last_execution_id: str | None = None
    """The execution the latest ``started`` run created (what ``overlap`` looks at)."""
    buffered_for: datetime | None = None
    """A time held back by ``buffer_one`` until the previous run ends."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (also what the stores keep)."""
        return {
            "id": self.id,
            "flow_id": self.flow_id,
            "version": self.version,
            "cron": self.cron,
            "timezone": self.timezone,
            "input": self.input,
            "overlap": self.overlap,
            "catchup": self.catchup,
            "catchup_window": format_duration(self.catchup_window),
            "jitter": format_duration(self.jitter),
            "start_at": _iso(self.start_at),
            "end_at": _iso(self.end_at),
            "paused": self.paused,
            "tenant_id": self.tenant_id,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "next_fire_at": _iso(self.next_fire_at),
            "last_execution_id": self.last_execution_id,
            "buffered_for": _iso(self.buffered_for),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        """Inverse of ``to_dict``."""
        created = _dt(data["created_at"])
        updated = _dt(data["updated_at"])
        assert created is not None and updated is not None
        return cls(
            id=data["id"],
            flow_id=data["flow_id"],
            version=data.get("version"),
            cron=data["cron"],
            timezone=data.get("timezone", "UTC"),
            input=dict(data.get("input") or {}),
            overlap=data.get("overlap", "skip"),
            catchup=data.get("catchup", "latest"),
            catchup_window=parse_duration(data.get("catchup_window", "1h")),
            jitter=parse_duration(data.get("jitter", "0s")),
            start_at=_dt(data.get("start_at")),
            end_at=_dt(data.get("end_at")),
            paused=bool(data.get("paused", False)),
            tenant_id=data.get("tenant_id"),
            created_at=created,
            updated_at=updated,
            next_fire_at=_dt(data.get("next_fire_at")),
            last_execution_id=data.get("last_execution_id"),
            buffered_for=_dt(data.get("buffered_for")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRun:
    """What happened at one scheduled time of one schedule."""

    schedule_id: str
    scheduled_for: datetime
    fired_at: datetime
    outcome: str
    """``started``, ``skipped`` or ``buffered``."""
    execution_id: str | None = None
    reason: str | None = None
    """Why a run was skipped (``overlap``, ``catchup``...)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "schedule_id": self.schedule_id,
            "scheduled_for": self.scheduled_for.isoformat(),
            "fired_at": self.fired_at.isoformat(),
            "execution_id": self.execution_id,
            "outcome": self.outcome,
            "reason": self.reason,
        }

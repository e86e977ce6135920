"""The times of a schedule: its fire times (``first_fire_at``, ``fire_times``), the
stable jitter of one time, and the ``{{ schedule.* }}`` placeholders of its input."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

from flowmonkey.cron import cached_spec
from flowmonkey.model.schedules import Schedule

__all__ = ["fire_times", "first_fire_at", "jitter_for", "render_input"]

_TEMPLATE = re.compile(r"\{\{\s*schedule\.(id|scheduled_for|fired_at)\s*\}\}")


def jitter_for(schedule: Schedule, scheduled_for: datetime) -> timedelta:
    """A stable pseudo-random delay in ``[0, schedule.jitter]`` for one scheduled time (the
    same in every process, so they agree when the time is due)."""
    span_ms = int(schedule.jitter.total_seconds() * 1000)
    if span_ms <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{schedule.id}|{scheduled_for.isoformat()}".encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % (span_ms + 1))


def render_input(
    value: Any, schedule: Schedule, scheduled_for: datetime, fired_at: datetime
) -> Any:
    """Replace ``{{ schedule.id }}``, ``{{ schedule.scheduled_for }}`` and
    ``{{ schedule.fired_at }}`` in every string of ``value`` (no expression language:
    the input is data, never code)."""
    values = {
        "id": schedule.id,
        "scheduled_for": scheduled_for.isoformat(),
        "fired_at": fired_at.isoformat(),
    }
    if isinstance(value, str):
        return _TEMPLATE.sub(lambda m: values[m[1]], value)
    if isinstance(value, dict):
        return {k: render_input(v, schedule, scheduled_for, fired_at) for k, v in value.items()}
    if isinstance(value, list):
        return [render_input(v, schedule, scheduled_for, fired_at) for v in value]
    return value


def first_fire_at(schedule: Schedule, after: datetime) -> datetime | None:
    """The first scheduled time of ``schedule`` strictly after ``after`` (and not before
    ``start_at``), or ``None`` past ``end_at``."""
    spec = cached_spec(schedule.cron, schedule.timezone)
    if schedule.start_at is not None and schedule.start_at > after:
        after = schedule.start_at - timedelta(microseconds=1)
    found = spec.next_after(after)
    if found is None or (schedule.end_at is not None and found > schedule.end_at):
        return None
    return found


def fire_times(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every scheduled time in ``[start, end]`` (backfill), within ``start_at``/``end_at``."""
    spec = cached_spec(schedule.cron, schedule.timezone)
    out: list[datetime] = []
    for t in spec.after(start - timedelta(microseconds=1)):
        if t > end or (schedule.end_at is not None and t > schedule.end_at):
            break
        if schedule.start_at is None or t >= schedule.start_at:
            out.append(t)
    return out

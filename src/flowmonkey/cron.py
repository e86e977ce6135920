"""Cron expressions in IANA time zones, with the DST rulings of the service docs.

Parsing and iteration are cronsim's (it follows Vixie/Debian cron around DST, unlike
croniter 7.0, which fires ``30 1 * * *`` twice on America/New_York's fall-back day).
This module adds what a schedule needs on top:

- 5 fields, or 6 with seconds first; the ``@hourly``-style aliases;
- a local time skipped by DST fires once, at the first valid instant after it (02:30 on a
  02:00->03:00 night fires at 03:00); a repeated local time fires once, its first
  occurrence. Every time returned is UTC and strictly increasing.

cronsim is imported lazily so the engine imports without the ``cron`` extra.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["ALIASES", "CronError", "CronSpec", "cached_spec", "parse_cron", "zone"]

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The aliases of Vixie cron (``@reboot`` has no meaning for a schedule)."""


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message names it."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``CronError`` when unknown)."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise CronError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name!r}") from None


def _imaginary(local: datetime) -> bool:
    """True when ``local`` (aware, fold 0) does not exist on the wall clock (a DST gap)."""
    back = local.astimezone(UTC).astimezone(local.tzinfo)
    return back.replace(tzinfo=None) != local.replace(tzinfo=None)


class CronSpec:
    """One parsed expression in one zone. Iterate fire times with ``after``."""

    __slots__ = ("_expr", "_zone", "expression", "timezone")

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.expression = expression
        self.timezone = timezone
        self._zone = zone(timezone)
        text = " ".join(str(expression).split())
        self._expr = ALIASES.get(text.lower(), text)
        if self._expr.startswith("@"):
            raise CronError(f"unknown cron alias {expression!r} (use one of {sorted(ALIASES)})")
        fields = len(self._expr.split())
        if fields not in (5, 6):
            raise CronError(
                f"cron expression {expression!r} has {fields} fields; "
                "use 5, or 6 with seconds first"
            )
        try:
            next(self._iter(datetime(2000, 1, 1, tzinfo=self._zone)))
        except StopIteration:
            raise CronError(f"cron expression {expression!r} never fires") from None
        except Exception as exc:  # cronsim.CronSimError and friends
            raise CronError(f"invalid cron expression {expression!r}: {exc}") from None

    def _iter(self, start_local: datetime) -> Iterator[datetime]:
        from cronsim import CronSim

        sim: Any = CronSim(self._expr, start_local)
        return iter(sim)

    def after(self, moment: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``moment`` (aware), as UTC datetimes, increasing."""
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        moment = moment.astimezone(UTC)
        # Start a second early (cronsim works in whole seconds on the wall clock), then
        # drop whatever is not strictly after ``moment`` (in the second pass of a repeated
        # hour the wall clock yields instants of the first pass: dropped the same way).
        start = (moment - timedelta(seconds=1)).astimezone(self._zone).replace(microsecond=0)
        last = moment
        for local in self._iter(start):
            if local.tzinfo is None:
                local = local.replace(tzinfo=self._zone)
            local = local.replace(fold=0)  # a repeated local time: its first occurrence
            while _imaginary(local):  # skipped by DST: the first valid instant after it
                local = (local + timedelta(minutes=1)).replace(second=0)
            fire = local.astimezone(UTC)
            if fire <= last:
                continue
            last = fire
            yield fire

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after ``moment`` (``None`` if it never fires)."""
        return next(self.after(moment), None)

    def next_n(self, moment: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times after ``moment``."""
        out: list[datetime] = []
        for fire in self.after(moment):
            out.append(fire)
            if len(out) >= count:
                break
        return out


@functools.lru_cache(maxsize=4096)
def cached_spec(expression: str, timezone: str = "UTC") -> CronSpec:
    """``CronSpec(expression, timezone)``, parsed once per process (a worker firing a
    schedule every second would otherwise parse it every second)."""
    return CronSpec(expression, timezone)


def parse_cron(expression: str, timezone: str = "UTC") -> CronSpec:
    """Parse ``expression`` in ``timezone``; ``CronError`` naming what is wrong."""
    return CronSpec(expression, timezone)

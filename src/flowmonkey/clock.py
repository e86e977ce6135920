"""Time is injected: the engine, stores and worker ask a ``Clock`` for ``now()``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "utcnow"]


@runtime_checkable
class Clock(Protocol):
    """Source of the current time (timezone-aware, UTC)."""

    def now(self) -> datetime:
        """Return the current time as an aware ``datetime``."""
        ...


def utcnow() -> datetime:
    """Return the wall-clock time in UTC."""
    return datetime.now(UTC)


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def now(self) -> datetime:
        """Return the wall-clock time in UTC."""
        return datetime.now(UTC)

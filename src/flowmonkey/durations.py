"""Durations as written in flow files: milliseconds, ``"1d2h30m"``, ``"500ms"``, ISO times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["format_duration", "parse_datetime", "parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s|w)")
_UNITS_MS = {"w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def parse_duration(value: object, *, field: str = "duration") -> timedelta:
    """Parse a duration: a ``timedelta``, milliseconds (int/float) or ``"1d2h30m"``.

    Raises:
        ValueError: the value is not a duration (the message names ``field``).
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a duration, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{field}: duration must not be negative")
        return timedelta(milliseconds=value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return timedelta(milliseconds=int(text))
        pos = 0
        total = 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS_MS[match.group(2)]
            pos = match.end()
        if pos == len(text) and pos > 0:
            return timedelta(milliseconds=total)
        raise ValueError(
            f'{field}: "{value}" is not a duration (use milliseconds or e.g. "1d2h30m", "500ms")'
        )
    raise ValueError(f"{field}: expected a duration, got {type(value).__name__}")


def format_duration(delta: timedelta) -> str:
    """Render a duration compactly (``"1d2h30m"``, ``"500ms"``); inverse of ``parse_duration``."""
    ms = round(delta.total_seconds() * 1000)
    if ms == 0:
        return "0ms"
    out = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNITS_MS[unit]
        if ms >= size:
            count, ms = divmod(ms, size)
            out.append(f"{count}{unit}")
    return "".join(out)


def parse_datetime(value: object, *, field: str = "time") -> datetime:
    """Parse an ISO-8601 time (naive times are taken as UTC) or pass an aware datetime through."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f'{field}: "{value}" is not an ISO-8601 time') from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"{field}: expected an ISO-8601 time, got {type(value).__name__}")

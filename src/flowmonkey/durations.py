"""Durations as written in flow files: milliseconds, ``"1d2h30m"``, ``"500ms"``, ISO-8601
durations (``"PT5M"``, ``"P1DT2H"``), and ISO-8601 times."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from flowmonkey.errors import InvalidDuration

__all__ = ["MAX_DURATION", "MAX_DURATION_MS", "format_duration", "parse_datetime", "parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s|w)")
_UNITS_MS = {"w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}

_NUM = r"(\d+(?:[.,]\d+)?)"
_ISO = re.compile(
    rf"P(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}W)?(?:{_NUM}D)?"
    rf"(?:(T)(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?"
)
# Group order of _ISO: Y, M, W, D, T, H, M, S.
_ISO_MS = (None, None, 604_800_000, 86_400_000, None, 3_600_000, 60_000, 1000)

_FORMS = 'use milliseconds, e.g. "1d2h30m", "500ms", or ISO-8601 like "PT5M"'


def _too_long(value: object, field: str) -> InvalidDuration:
    shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
    return InvalidDuration(
        f"{field}: duration {shown!r} is too large: the maximum is "
        f"{MAX_DURATION.days} days (ten years)"
    )


def _from_ms(total: int | float, value: object, field: str) -> timedelta:
    if isinstance(total, float) and not math.isfinite(total) and not isinstance(value, str):
        raise InvalidDuration(f"{field}: duration must be a finite number, got {value!r}")
    if total < 0:
        raise InvalidDuration(f"{field}: duration must not be negative")
    # Checked before building the timedelta: an infinite or huge number overflows it, and
    # a value the stores and clocks cannot add to "now" must never reach them.
    if total > MAX_DURATION_MS:
        raise _too_long(value, field)
    return timedelta(milliseconds=total)


def _parse_iso(text: str, value: str, field: str) -> timedelta:
    """``text`` is upper-cased and starts with ``P``."""
    match = _ISO.fullmatch(text)
    if match is None:
        hint = ""
        if "T" not in text and text.endswith(("H", "S")):
            hint = '; hours, minutes and seconds go after a "T", e.g. "PT1H"'
        raise InvalidDuration(
            f'{field}: "{value}" is not an ISO-8601 duration '
            f'(e.g. "PT5M", "P1DT2H", "PT0.5S", "P1W"){hint}'
        )
    groups = match.groups()
    if groups[0] is not None or groups[1] is not None:
        hint = ""
        if groups[1] is not None:
            hint = f' ("M" before "T" means months: {groups[1]} minutes is "PT{groups[1]}M")'
        raise InvalidDuration(
            f'{field}: "{value}" uses years or months, which have no fixed length; '
            f'use weeks, days or smaller units (e.g. "P30D"){hint}'
        )
    numbers = [(g, size) for g, size in zip(groups, _ISO_MS, strict=True) if size is not None]
    if all(g is None for g, _ in numbers):
        raise InvalidDuration(f'{field}: "{value}" has no amount (e.g. "PT5M", "P1D")')
    if groups[4] is not None and all(g is None for g in groups[5:]):
        raise InvalidDuration(f'{field}: "{value}" has a "T" but no hours, minutes or seconds')
    total = sum(float(g.replace(",", ".")) * size for g, size in numbers if g is not None)
    return _from_ms(total, value, field)


def parse_duration(value: object, *, field: str = "duration") -> timedelta:
    """Parse a duration.

    Accepted: a ``timedelta``; milliseconds as a number or a digit string (``30000``);
    units concatenated, case-insensitive (``"1d2h30m"``, ``"1.5h"``, ``"500ms"``, ``"2w"``);
    ISO-8601 durations (``"PT5M"``, ``"P1DT2H"``, ``"PT0.5S"``, ``"P1W"``). ISO years and
    months (``"P1Y"``, ``"P1M"``) are rejected: they have no fixed length.

    Raises:
        InvalidDuration: (a ``ValueError``) the value is not a duration, is negative or
            is longer than ``MAX_DURATION`` (the message names ``field``).
    """
    if isinstance(value, timedelta):
        if value > MAX_DURATION:
            raise _too_long(format_duration(value), field)
        return value
    if isinstance(value, bool):
        raise InvalidDuration(f"{field}: expected a duration, got a boolean")
    if isinstance(value, int | float):
        return _from_ms(value, value, field)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            # A digit string too long for int() (Python's 4300-digit guard) is too long
            # a duration anyway.
            if len(text) > 20:
                raise _too_long(value, field)
            return _from_ms(int(text), value, field)
        if text[:1] in ("P", "p"):
            return _parse_iso(text.upper(), value, field)
        if text.startswith("-"):
            raise InvalidDuration(f"{field}: duration must not be negative")
        text = text.lower()
        pos = 0
        total = 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS_MS[match.group(2)]
            pos = match.end()
        if pos == len(text) and pos > 0:
            return _from_ms(total, value, field)
        raise InvalidDuration(f'{field}: "{value}" is not a duration ({_FORMS})')
    raise InvalidDuration(f"{field}: expected a duration, got {type(value).__name__}")


def format_duration(delta: timedelta) -> str:
    """Render a duration compactly (``"1d2h30m"``, ``"500ms"``); inverse of ``parse_duration``
    (to the millisecond)."""
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
            raise InvalidDuration(f'{field}: "{value}" is not an ISO-8601 time') from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"{field}: expected an ISO-8601 time, got {type(value).__name__}")


MAX_DURATION = timedelta(days=3650)
"""The longest duration flowmonkey accepts anywhere (timeouts, delays, waits, backoffs): ten years."""
MAX_DURATION_MS = 3650 * 24 * 3600 * 1000
"""``MAX_DURATION`` in milliseconds."""

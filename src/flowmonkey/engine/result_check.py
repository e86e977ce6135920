"""What a handler returned is checked before it goes into a commit.

A value the store cannot hold (a set in ``details``, a naive ``wake_at``, a ten-million-day
delay) used to surface only when the commit failed, after the handler's side effect, and
then the step ran again on every lease expiry. Checking (or normalising) every field here
turns such a result into one recorded, non-retryable ``INVALID_RESULT`` failure instead.
The output is checked where it is written (``Run.write``), with the context limits.

Also the runtime clamps: a duration computed while running (a retry backoff, a wait
timeout) never exceeds ``MAX_DURATION``, so datetime arithmetic cannot overflow.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import orjson

from flowmonkey.durations import MAX_DURATION, MAX_DURATION_MS
from flowmonkey.model.result import UNSET, Result, StepError

__all__ = [
    "INVALID_RESULT",
    "InvalidResult",
    "check_result",
    "check_value",
    "invalid",
    "clamp_delay_ms",
    "clamp_duration",
]

INVALID_RESULT = "INVALID_RESULT"
"""Failure code of a step whose result cannot be recorded (never retried)."""

_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_MAX_DETAILS_BYTES = 1024 * 1024
"""Largest JSON size of a failure's ``details`` (it is copied into history and events)."""


class InvalidResult(ValueError):
    """A handler's result (or a value in it) cannot be recorded; the message says why."""


def check_value(value: Any, what: str, *, max_bytes: int = _MAX_DETAILS_BYTES) -> bytes:
    """Encode ``value`` as the stores will; refuse what JSON cannot hold faithfully.

    Refused: non-JSON types (sets, objects, datetimes, non-string keys), integers beyond
    64 bits, lone surrogates, NaN and Infinity (JSON has no such numbers), nesting deeper
    than the encoder allows, and more than ``max_bytes`` of JSON.

    Raises:
        InvalidResult: naming ``what``.
    """
    try:
        encoded = orjson.dumps(value, option=_OPTS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise InvalidResult(f"{what} is not JSON: {exc}") from None
    if len(encoded) > max_bytes:
        raise InvalidResult(f"{what} is {len(encoded)} bytes of JSON; the maximum is {max_bytes}")
    # orjson writes NaN/Infinity as null: look for them (cheaply: only if a float is there).
    if b"null" in encoded and _has_non_finite(value):
        raise InvalidResult(f"{what} contains NaN or Infinity, which JSON cannot hold")
    return encoded


def _has_non_finite(value: Any) -> bool:
    # Depth is bounded: orjson already refused anything nested deeper than 255.
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


def _text(value: Any, what: str, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidResult(f"{what} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidResult(f"{what} is not valid text (a lone surrogate)") from None
    if "\x00" in value:
        raise InvalidResult(f"{what} contains a NUL character")
    return value


def _readable(text: str) -> str:
    """``text`` with what no store can hold replaced (a NUL, a lone surrogate): a
    message is for people, so it is repaired rather than refused."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _check_delay(delay: Any) -> timedelta | None:
    if delay is None:
        return None
    if isinstance(delay, bool) or not isinstance(delay, timedelta | int | float):
        raise InvalidResult(
            f"Result.wait(delay=...) must be a timedelta or seconds, got {type(delay).__name__}"
        )
    if isinstance(delay, int | float):
        if not math.isfinite(delay) or abs(delay) > MAX_DURATION.total_seconds():
            raise InvalidResult(
                f"Result.wait(delay={delay!r}) is longer than the maximum {MAX_DURATION.days} days"
            )
        delay = timedelta(seconds=delay)
    checked: timedelta = delay
    if checked < timedelta(0):
        raise InvalidResult(f"Result.wait(delay=...) must not be negative, got {delay}")
    if checked > MAX_DURATION:
        raise InvalidResult(
            f"Result.wait(delay=...) of {checked.days} days is longer than the maximum "
            f"{MAX_DURATION.days} days"
        )
    return checked


def _check_wake_at(wake_at: Any, now: datetime) -> datetime | None:
    if wake_at is None:
        return None
    if not isinstance(wake_at, datetime):
        raise InvalidResult(
            f"Result.wait(wake_at=...) must be a datetime, got {type(wake_at).__name__}"
        )
    if wake_at.tzinfo is None or wake_at.utcoffset() is None:
        raise InvalidResult(
            f"Result.wait(wake_at={wake_at.isoformat()}) is a naive datetime: give a "
            "timezone-aware time, e.g. datetime.now(UTC) + timedelta(hours=1)"
        )
    if wake_at - now > MAX_DURATION:
        raise InvalidResult(
            f"Result.wait(wake_at={wake_at.isoformat()}) is more than "
            f"{MAX_DURATION.days} days ahead"
        )
    return wake_at


def _check_error(error: Any) -> StepError:
    if not isinstance(error, StepError):
        raise InvalidResult(f"a failure needs a StepError, got {type(error).__name__}")
    code = _text(error.code, "Result.failure code", optional=False)
    if not code:
        raise InvalidResult("Result.failure code must not be empty")
    message: Any = error.message
    if not isinstance(message, str):
        message = str(message)  # normalised: a message is only for people
    message = _readable(message)
    if error.details is not None:
        check_value(error.details, "Result.failure details")
    retryable = error.retryable
    if not isinstance(retryable, bool):
        raise InvalidResult(
            f"Result.failure retryable must be True or False, got {type(retryable).__name__}"
        )
    if message is error.message:
        return error
    return StepError(code=code, message=message, details=error.details, retryable=retryable)


def _checked(result: Result, now: datetime) -> Result:
    outcome = result.outcome
    if outcome == "success":
        port, target = result.port, result.next_step
        if port is not None:
            _text(port, "Result.success port")
        if target is not UNSET and target is not None:
            _text(target, "Result.success next_step")
        return result
    if outcome == "failure":
        error = _check_error(result.error)
        if error is result.error:
            return result
        return Result(outcome="failure", error=error, delay=result.delay)
    if outcome == "wait":
        wake_at = _check_wake_at(result.wake_at, now)
        delay = _check_delay(result.delay)
        _text(result.reason, "Result.wait reason")
        if delay is result.delay:
            return result
        return Result(
            outcome="wait", wake_at=wake_at, delay=delay, reason=result.reason,
            output=result.output,
        )  # fmt: skip
    raise InvalidResult(f"unknown result outcome {outcome!r}")


def check_result(result: Result, now: datetime) -> Result:
    """``result``, normalised, or a non-retryable ``INVALID_RESULT`` failure saying what
    in it cannot be recorded. Never raises."""
    if result.outcome == "success" and result.port is None and result.next_step is UNSET:
        return result  # the common case: nothing but the output (checked when written)
    try:
        return _checked(result, now)
    except InvalidResult as exc:
        return invalid(str(exc))


def invalid(message: str) -> Result:
    """A non-retryable ``INVALID_RESULT`` failure."""
    return Result.failure(INVALID_RESULT, message, retryable=False)


def clamp_delay_ms(delay_ms: float) -> float:
    """A computed backoff in milliseconds, within ``[0, MAX_DURATION_MS]`` (NaN -> max)."""
    if not delay_ms < MAX_DURATION_MS:  # also true for NaN and +inf
        return float(MAX_DURATION_MS)
    return max(delay_ms, 0.0)


def clamp_duration(delta: timedelta) -> timedelta:
    """A computed duration, at most ``MAX_DURATION``."""
    return delta if delta <= MAX_DURATION else MAX_DURATION

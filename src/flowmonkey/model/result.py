"""What a handler returns: ``Result.success`` / ``Result.failure`` / ``Result.wait``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from flowmonkey.durations import MAX_DURATION

__all__ = ["UNSET", "Result", "StepError"]

_MAX_SECONDS = MAX_DURATION.total_seconds()


class _Unset:
    """Marker for "not given" where ``None`` is meaningful (``next_step=None`` completes)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final[Any] = _Unset()


@dataclass(frozen=True, slots=True, kw_only=True)
class StepError:
    """Why a step failed."""

    code: str
    message: str
    details: Any = None
    retryable: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        if not self.retryable:
            out["retryable"] = False
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The outcome of one handler attempt. Build it with the class methods."""

    outcome: str
    """``success``, ``failure`` or ``wait``."""
    output: Any = None
    port: str | None = None
    next_step: Any = UNSET
    """A step id, ``None`` (complete the flow) or ``UNSET`` (follow the transitions)."""
    error: StepError | None = None
    wake_at: datetime | None = None
    delay: timedelta | None = None
    """A wait's delay; on a failure, the server-given delay before the retry."""
    reason: str | None = None

    @classmethod
    def success(
        cls, output: Any = None, *, port: str | None = None, next_step: Any = UNSET
    ) -> Result:
        """The step succeeded; ``port`` or ``next_step`` can pick where to go next."""
        if output is None and port is None and next_step is UNSET and cls is Result:
            return _SUCCESS  # the commonest result is a constant (Results are immutable)
        return cls(outcome="success", output=output, port=port, next_step=next_step)

    @classmethod
    def failure(
        cls,
        code: str,
        message: str,
        *,
        details: Any = None,
        retryable: bool = True,
        retry_after: timedelta | float | None = None,
    ) -> Result:
        """The step failed with ``code``; ``retryable=False`` skips the retry policy.

        ``retry_after`` (a ``timedelta`` or seconds; e.g. an HTTP ``Retry-After``) replaces
        the policy's next backoff, capped by its ``maxBackoffMs``.
        """
        if isinstance(retry_after, int | float):
            retry_after = timedelta(seconds=retry_after)
        return cls(
            outcome="failure",
            error=StepError(code=code, message=message, details=details, retryable=retryable),
            delay=retry_after,
        )

    @classmethod
    def wait(
        cls,
        *,
        wake_at: datetime | None = None,
        delay: timedelta | float | None = None,
        reason: str | None = None,
        output: Any = None,
    ) -> Result:
        """Park the execution. Without ``wake_at``/``delay`` it waits for resume or signal.

        ``wake_at`` must be timezone-aware and ``delay`` at most ``MAX_DURATION`` (ten
        years): the engine fails the step with ``INVALID_RESULT`` otherwise.
        """
        if (
            isinstance(delay, int | float)
            and not isinstance(delay, bool)
            and abs(delay) <= _MAX_SECONDS  # False for NaN: the engine refuses it then
        ):
            delay = timedelta(seconds=delay)
        # A number that is no duration (NaN, 1e300 s) is kept as given: the engine
        # then fails the step with a clear INVALID_RESULT rather than the handler dying
        # in timedelta().
        kept = cast("timedelta | None", delay)
        return cls(outcome="wait", wake_at=wake_at, delay=kept, reason=reason, output=output)

    @property
    def is_success(self) -> bool:
        """True for a success."""
        return self.outcome == "success"


_SUCCESS = Result(outcome="success")

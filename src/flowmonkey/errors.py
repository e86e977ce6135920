"""One exception hierarchy for flowmonkey; every error carries a stable ``code``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AlreadyExists",
    "ContextKeyLimitError",
    "ContextLimitError",
    "ContextNestingError",
    "ContextSizeLimitError",
    "ContextValueTooLargeError",
    "ExecutionNotFailed",
    "ExecutionNotFound",
    "ExecutionNotWaiting",
    "ExecutionTerminal",
    "FlowMonkeyError",
    "FlowNotFound",
    "FlowValidationError",
    "HandlerNotFound",
    "IdempotencyConflict",
    "InvalidCursor",
    "InvalidDuration",
    "InvalidResumeToken",
    "InvalidSchedule",
    "InvalidSignal",
    "InvalidValue",
    "LeaseLost",
    "ResumeTokenExpired",
    "ScheduleNotFound",
    "SchemaVersionError",
    "StoreError",
    "StoreUnavailable",
    "TaskNotFound",
    "ValidationIssue",
]


class FlowMonkeyError(Exception):
    """Base class of every flowmonkey error; ``code`` is stable and machine-readable."""

    code: str = "FLOWMONKEY_ERROR"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"code", "message", "details"?}`` for logs and APIs."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


def _printable(text: str) -> str:
    """``text`` with lone surrogates escaped: a definition may contain them (JSON allows
    ``"\\ud800"``), and printing them to a UTF-8 terminal would raise."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem found in a flow definition."""

    path: str
    """Dotted location of the problem, e.g. ``steps.charge.transitions.onSuccess``."""
    message: str
    """What is wrong, in one sentence."""
    severity: str = "error"
    """``error`` (the flow is rejected) or ``warning`` (reported, accepted)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _printable(self.path))
        object.__setattr__(self, "message", _printable(self.message))

    def to_dict(self) -> dict[str, str]:
        """Return the issue as a JSON-ready dict."""
        return {"path": self.path, "message": self.message, "severity": self.severity}

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


class FlowValidationError(FlowMonkeyError):
    """A flow definition is invalid; ``issues`` lists every problem found."""

    code = "INVALID_FLOW"

    def __init__(
        self,
        flow_id: str | None,
        issues: Sequence[ValidationIssue],
        message: str | None = None,
    ) -> None:
        self.flow_id = flow_id
        self.issues = list(issues)
        errors = [i for i in self.issues if i.severity == "error"] or self.issues
        if message is None:
            listed = "; ".join(f"{i.path}: {i.message}" for i in errors)
            name = f'Flow "{flow_id}"' if flow_id else "Flow"
            message = f"{name} is invalid ({len(errors)} problem(s)): {listed}"
        super().__init__(_printable(message), details=[i.to_dict() for i in self.issues])


class FlowNotFound(FlowMonkeyError):
    """No flow (or no such version of it) is registered."""

    code = "FLOW_NOT_FOUND"

    def __init__(self, flow_id: str, version: str | None = None) -> None:
        self.flow_id = flow_id
        self.version = version
        what = f'"{flow_id}"' + (f" version {version}" if version else "")
        super().__init__(f"Flow {what} not found")


class ExecutionNotFound(FlowMonkeyError):
    """No execution has this id (or it belongs to another tenant)."""

    code = "EXECUTION_NOT_FOUND"

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(f'Execution "{execution_id}" not found')


class ExecutionNotWaiting(FlowMonkeyError):
    """The execution is not in ``waiting``, so it cannot be resumed."""

    code = "EXECUTION_NOT_WAITING"

    def __init__(self, execution_id: str, status: str) -> None:
        self.execution_id = execution_id
        self.status = status
        super().__init__(f'Execution "{execution_id}" is not waiting (status: {status})')


class ExecutionTerminal(FlowMonkeyError):
    """The execution already completed, failed or was cancelled."""

    code = "EXECUTION_TERMINAL"

    def __init__(self, execution_id: str, status: str) -> None:
        self.execution_id = execution_id
        self.status = status
        super().__init__(f'Execution "{execution_id}" is already {status}')


class ExecutionNotFailed(FlowMonkeyError):
    """Only a ``failed`` execution can be retried; this one is not (or cannot be)."""

    code = "EXECUTION_NOT_FAILED"

    def __init__(self, execution_id: str, status: str, reason: str | None = None) -> None:
        self.execution_id = execution_id
        self.status = status
        why = reason or f"status: {status}"
        super().__init__(f'Execution "{execution_id}" cannot be retried ({why})')


class InvalidSignal(FlowMonkeyError):
    """A signal did not match a step the execution is waiting at; nothing changed."""

    code = "INVALID_SIGNAL"


class InvalidResumeToken(FlowMonkeyError):
    """The resume token is unknown, already used, revoked or for another execution."""

    code = "INVALID_RESUME_TOKEN"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid resume token: {reason}")


class ResumeTokenExpired(FlowMonkeyError):
    """The resume token's expiry time has passed."""

    code = "RESUME_TOKEN_EXPIRED"

    def __init__(self) -> None:
        super().__init__("Resume token has expired")


class IdempotencyConflict(FlowMonkeyError):
    """An idempotency key is already used with different, incompatible arguments."""

    code = "IDEMPOTENCY_CONFLICT"


class InvalidCursor(FlowMonkeyError, ValueError):
    """A listing cursor is not one a previous page returned (garbled, truncated, forged).

    Also a ``ValueError``, which stores raised for bad cursors before it existed.
    """

    code = "INVALID_CURSOR"

    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        shown = cursor if len(cursor) <= 60 else cursor[:60] + "..."
        super().__init__(
            f"Invalid cursor {shown!r}: pass the next_cursor of a previous page unchanged"
        )


class InvalidDuration(FlowMonkeyError, ValueError):
    """A duration cannot be parsed, is negative, or is longer than ``MAX_DURATION``.

    Also a ``ValueError``, which ``parse_duration`` raised before it existed.
    """

    code = "INVALID_DURATION"


class HandlerNotFound(FlowMonkeyError):
    """No handler is registered for a step type."""

    code = "HANDLER_NOT_FOUND"

    def __init__(self, handler_type: str) -> None:
        self.handler_type = handler_type
        super().__init__(f'No handler for "{handler_type}"')


class TaskNotFound(FlowMonkeyError):
    """No user task has this id."""

    code = "TASK_NOT_FOUND"

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f'Task "{task_id}" not found')


class StoreError(FlowMonkeyError):
    """A store operation failed; the driver's exception is chained as ``__cause__``."""

    code = "STORE_ERROR"


class StoreUnavailable(StoreError):
    """The store's server cannot be reached (the URL is shown with its password hidden)."""

    code = "STORE_UNAVAILABLE"


class SchemaVersionError(StoreError):
    """The database schema is older or newer than this flowmonkey expects."""

    code = "SCHEMA_VERSION"


class LeaseLost(StoreError):
    """This process no longer holds the execution's lease; its commit was refused."""

    code = "LEASE_LOST"

    def __init__(self, execution_id: str, reason: str = "lease taken over") -> None:
        self.execution_id = execution_id
        super().__init__(f'Lease on execution "{execution_id}" lost: {reason}')


class InvalidValue(FlowMonkeyError, ValueError):
    """A value cannot be stored as given: not JSON, or a number JSON cannot hold (NaN,
    Infinity), or an empty ``tenant_id``. Nothing was written."""

    code = "INVALID_VALUE"


class ContextLimitError(FlowMonkeyError):
    """A context write broke one of the configured context limits."""

    code = "CONTEXT_LIMIT"

    def __init__(self, message: str, *, limit: int, actual: int) -> None:
        self.limit = limit
        self.actual = actual
        super().__init__(message, details={"limit": limit, "actual": actual})


class ContextValueTooLargeError(ContextLimitError):
    """One value is larger than ``max_value_bytes``."""

    code = "CONTEXT_VALUE_TOO_LARGE"

    def __init__(self, key: str, actual: int, limit: int) -> None:
        self.key = key
        super().__init__(
            f'Context value for key "{key}" is {actual} bytes, exceeds limit of {limit} bytes',
            limit=limit,
            actual=actual,
        )


class ContextSizeLimitError(ContextLimitError):
    """The whole context would grow beyond ``max_total_bytes``."""

    code = "CONTEXT_SIZE_LIMIT"

    def __init__(self, current: int, added: int, limit: int) -> None:
        super().__init__(
            f"Adding {added} bytes would exceed total context limit of {limit} bytes "
            f"(current: {current})",
            limit=limit,
            actual=current + added,
        )


class ContextKeyLimitError(ContextLimitError):
    """The context would hold more than ``max_keys`` top-level keys."""

    code = "CONTEXT_KEY_LIMIT"

    def __init__(self, actual: int, limit: int) -> None:
        super().__init__(
            f"Context has {actual} keys, exceeds limit of {limit}", limit=limit, actual=actual
        )


class ContextNestingError(ContextLimitError):
    """A value is nested deeper than ``max_depth``."""

    code = "CONTEXT_NESTING_LIMIT"

    def __init__(self, key: str, actual: int, limit: int) -> None:
        self.key = key
        super().__init__(
            f'Context value for key "{key}" has nesting depth of {actual}, '
            f"exceeds limit of {limit}",
            limit=limit,
            actual=actual,
        )


def error_from_mapping(data: Mapping[str, Any]) -> FlowMonkeyError:
    """Rebuild a generic error from ``{"code", "message"}`` (used by stores and the CLI)."""
    return FlowMonkeyError(
        str(data.get("message", "")), code=str(data.get("code", "")), details=data.get("details")
    )


class AlreadyExists(StoreError):
    """A schedule, trigger or form with that id already exists."""

    code = "ALREADY_EXISTS"


class ScheduleNotFound(FlowMonkeyError):
    """No schedule with that id (or not visible to the caller)."""

    code = "SCHEDULE_NOT_FOUND"


class InvalidSchedule(FlowMonkeyError):
    """A schedule definition that cannot be used; ``details`` lists every problem as
    ``{"path", "message"}``."""

    code = "INVALID_SCHEDULE"

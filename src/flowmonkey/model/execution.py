"""Executions, tokens, step records and their statuses: pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "Cancellation",
    "ErrorInfo",
    "Execution",
    "ExecutionStatus",
    "StepRecord",
    "Token",
    "TokenStatus",
]


class ExecutionStatus(StrEnum):
    """Where an execution is in its life. ``completed``/``failed``/``cancelled`` are final."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """True for ``completed``, ``failed`` and ``cancelled``."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)


class TokenStatus(StrEnum):
    """A token is a position in the flow graph."""

    ACTIVE = "active"
    WAITING = "waiting"
    DONE = "done"


_new_token = object.__new__


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@dataclass(slots=True, kw_only=True)
class Token:
    """A position of an execution in its flow (a linear flow has exactly one)."""

    id: str
    step_id: str | None
    status: TokenStatus = TokenStatus.ACTIVE
    branch: str | None = None
    """Branch step id when forked by a ``parallel`` step."""
    parent_id: str | None = None
    """The token that forked this one."""
    fork_id: str | None = None
    """Id of the fork (the parallel step visit) this token belongs to."""
    wake_at: datetime | None = None
    wait_reason: str | None = None
    wait_kind: str | None = None
    """Why it waits: ``timer``, ``retry``, ``signal``, ``task``, ``child``, ``join``."""
    wait_started_at: datetime | None = None
    wait_deadline_at: datetime | None = None
    visit: int = 0
    """Step count when the token entered its step (identifies one visit of a step)."""
    wait_step: dict[str, Any] | None = None
    """What ending this wait needs from the waiting step (its ``type``, ``outputKey`` and
    ``transitions``, in the flow's JSON shape), recorded when the wait starts: resume,
    signal, timeouts and wakes then work in a process that lacks the flow definition."""
    recoveries: int = 0
    """Times the execution was re-claimed after losing its runner while this token was
    active, since the token's step last committed (``POISONED_STEP`` bounds it)."""

    def copy(self) -> Token:
        """A copy (tokens are mutable; stores keep their own)."""
        token = _new_token(Token)
        token.id = self.id
        token.step_id = self.step_id
        token.status = self.status
        token.branch = self.branch
        token.parent_id = self.parent_id
        token.fork_id = self.fork_id
        token.wake_at = self.wake_at
        token.wait_reason = self.wait_reason
        token.wait_kind = self.wait_kind
        token.wait_started_at = self.wait_started_at
        token.wait_deadline_at = self.wait_deadline_at
        token.visit = self.visit
        token.wait_step = self.wait_step
        token.recoveries = self.recoveries
        return token

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (times as ISO strings, ``None`` fields omitted)."""
        out: dict[str, Any] = {"id": self.id, "step_id": self.step_id, "status": str(self.status)}
        for name in ("branch", "parent_id", "fork_id", "wait_reason", "wait_kind"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for name in ("wake_at", "wait_started_at", "wait_deadline_at"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat()
        if self.visit:
            out["visit"] = self.visit
        if self.wait_step is not None:
            out["wait_step"] = self.wait_step
        if self.recoveries:
            out["recoveries"] = self.recoveries
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Token:
        """Inverse of ``to_dict``."""
        return cls(
            id=data["id"],
            step_id=data.get("step_id"),
            status=TokenStatus(data.get("status", "active")),
            branch=data.get("branch"),
            parent_id=data.get("parent_id"),
            fork_id=data.get("fork_id"),
            wake_at=_dt(data.get("wake_at")),
            wait_reason=data.get("wait_reason"),
            wait_kind=data.get("wait_kind"),
            wait_started_at=_dt(data.get("wait_started_at")),
            wait_deadline_at=_dt(data.get("wait_deadline_at")),
            visit=data.get("visit", 0),
            wait_step=data.get("wait_step"),
            recoveries=data.get("recoveries", 0),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """A failure recorded on an execution (``error`` or ``last_error``)."""

    code: str
    message: str
    step_id: str | None = None
    details: Any = None
    at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.step_id is not None:
            out["step_id"] = self.step_id
        if self.details is not None:
            out["details"] = self.details
        if self.at is not None:
            out["at"] = self.at.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ErrorInfo | None:
        """Inverse of ``to_dict`` (``None`` passes through)."""
        if data is None:
            return None
        return cls(
            code=data["code"],
            message=data.get("message", ""),
            step_id=data.get("step_id"),
            details=data.get("details"),
            at=_dt(data.get("at")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancellation:
    """Who cancelled an execution, why and when."""

    source: str
    """``user``, ``timeout``, ``parent`` or ``system``."""
    reason: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"source": self.source, "reason": self.reason, "at": self.at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Cancellation | None:
        """Inverse of ``to_dict``."""
        if data is None:
            return None
        at = _dt(data["at"])
        assert at is not None
        return cls(source=data["source"], reason=data.get("reason"), at=at)


@dataclass(slots=True, kw_only=True)
class StepRecord:
    """History entry: one handler attempt."""

    step_id: str
    handler_type: str
    attempt: int
    run_number: int
    outcome: str
    """``success``, ``failure`` or ``wait``."""
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    error: dict[str, Any] | None = None
    token_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        out: dict[str, Any] = {
            "step_id": self.step_id,
            "handler_type": self.handler_type,
            "attempt": self.attempt,
            "run_number": self.run_number,
            "outcome": self.outcome,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_ms": self.duration_ms,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.token_id is not None:
            out["token_id"] = self.token_id
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        """Inverse of ``to_dict``."""
        started = _dt(data["started_at"])
        finished = _dt(data["finished_at"])
        assert started is not None and finished is not None
        return cls(
            step_id=data["step_id"],
            handler_type=data["handler_type"],
            attempt=data["attempt"],
            run_number=data["run_number"],
            outcome=data["outcome"],
            started_at=started,
            finished_at=finished,
            duration_ms=data["duration_ms"],
            error=data.get("error"),
            token_id=data.get("token_id"),
        )


@dataclass(slots=True, kw_only=True)
class Execution:
    """One run of a flow. All of its state lives here and in the store."""

    id: str
    flow_id: str
    flow_version: str
    status: ExecutionStatus
    current_step_id: str | None
    tokens: list[Token] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    wake_at: datetime | None = None
    wait_reason: str | None = None
    error: ErrorInfo | None = None
    last_error: ErrorInfo | None = None
    step_count: int = 0
    run_number: int = 1
    history: list[StepRecord] = field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    tenant_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    user_id: str | None = None
    idempotency_key: str | None = None
    idempotency_expires_at: datetime | None = None
    parent_execution_id: str | None = None
    parent_step_id: str | None = None
    """The parent's step (a ``subflow``/``forEach`` step) that started this child."""
    depth: int = 0
    """Sub-flow nesting: 0 for an execution started directly, its parent's + 1 for a
    child (bounded by ``EngineOptions.max_subflow_depth``)."""
    cancellation: Cancellation | None = None
    retry_attempts: dict[str, int] = field(default_factory=dict)
    execution_timeout: timedelta | None = None
    wait_timeout: timedelta | None = None
    deadline_at: datetime | None = None
    """``created_at + execution_timeout``: when the execution is cancelled for time."""
    checkpoint: dict[str, Any] | None = None
    """``{"step_id", "data"}`` saved by ``ctx.checkpoint`` for the current step."""
    event_seq: int = 0
    """Sequence number of the last event persisted for this execution."""

    @property
    def is_terminal(self) -> bool:
        """True once completed, failed or cancelled."""
        return self.status.is_terminal

    def clone(
        self, *, context: dict[str, Any] | None = None, history: list[StepRecord] | None = None
    ) -> Execution:
        """A copy that shares nothing mutable with this one except context/history values
        (``context``/``history`` replace them when given, else they are shallow-copied)."""
        copy = _new_execution(Execution)
        for name in _EXECUTION_SLOTS:
            setattr(copy, name, getattr(self, name))
        copy.tokens = [t.copy() for t in self.tokens]
        copy.metadata = dict(self.metadata)
        copy.retry_attempts = dict(self.retry_attempts)
        copy.context = dict(self.context) if context is None else context
        copy.history = list(self.history) if history is None else history
        return copy

    def state_dict(self) -> dict[str, Any]:
        """The fields a step commit may change (``header_dict`` minus what is fixed at
        create and ``checkpoint``), with datetimes left as objects for a JSON encoder
        that handles them (orjson): stores call this on every commit."""
        error = self.error
        last_error = self.last_error
        cancellation = self.cancellation
        return {
            "status": self.status.value,
            "current_step_id": self.current_step_id,
            "tokens": [t.to_dict() for t in self.tokens],
            "wake_at": self.wake_at,
            "wait_reason": self.wait_reason,
            "error": error.to_dict() if error is not None else None,
            "last_error": last_error.to_dict() if last_error is not None else None,
            "step_count": self.step_count,
            "run_number": self.run_number,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "cancellation": cancellation.to_dict() if cancellation is not None else None,
            "retry_attempts": self.retry_attempts,
            "deadline_at": self.deadline_at,
            "event_seq": self.event_seq,
        }

    def header_dict(self) -> dict[str, Any]:
        """Everything but ``context`` and ``history``, JSON-ready (stores use this)."""
        return {
            "id": self.id,
            "flow_id": self.flow_id,
            "flow_version": self.flow_version,
            "status": str(self.status),
            "current_step_id": self.current_step_id,
            "tokens": [t.to_dict() for t in self.tokens],
            "wake_at": _iso(self.wake_at),
            "wait_reason": self.wait_reason,
            "error": self.error.to_dict() if self.error else None,
            "last_error": self.last_error.to_dict() if self.last_error else None,
            "step_count": self.step_count,
            "run_number": self.run_number,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "tenant_id": self.tenant_id,
            "metadata": self.metadata,
            "correlation_id": self.correlation_id,
            "user_id": self.user_id,
            "idempotency_key": self.idempotency_key,
            "idempotency_expires_at": _iso(self.idempotency_expires_at),
            "parent_execution_id": self.parent_execution_id,
            "parent_step_id": self.parent_step_id,
            "depth": self.depth,
            "cancellation": self.cancellation.to_dict() if self.cancellation else None,
            "retry_attempts": self.retry_attempts,
            "execution_timeout_ms": _ms(self.execution_timeout),
            "wait_timeout_ms": _ms(self.wait_timeout),
            "deadline_at": _iso(self.deadline_at),
            "checkpoint": self.checkpoint,
            "event_seq": self.event_seq,
        }

    @classmethod
    def from_header(
        cls,
        data: dict[str, Any],
        *,
        context: dict[str, Any] | None = None,
        history: list[StepRecord] | None = None,
    ) -> Execution:
        """Inverse of ``header_dict`` plus the separately stored context and history."""
        created = _dt(data["created_at"])
        updated = _dt(data["updated_at"])
        assert created is not None and updated is not None
        return cls(
            id=data["id"],
            flow_id=data["flow_id"],
            flow_version=data["flow_version"],
            status=ExecutionStatus(data["status"]),
            current_step_id=data.get("current_step_id"),
            tokens=[Token.from_dict(t) for t in data.get("tokens") or ()],
            context=context if context is not None else {},
            wake_at=_dt(data.get("wake_at")),
            wait_reason=data.get("wait_reason"),
            error=ErrorInfo.from_dict(data.get("error")),
            last_error=ErrorInfo.from_dict(data.get("last_error")),
            step_count=data.get("step_count", 0),
            run_number=data.get("run_number", 1),
            history=history if history is not None else [],
            created_at=created,
            updated_at=updated,
            started_at=_dt(data.get("started_at")),
            finished_at=_dt(data.get("finished_at")),
            tenant_id=data.get("tenant_id"),
            metadata=data.get("metadata") or {},
            correlation_id=data.get("correlation_id"),
            user_id=data.get("user_id"),
            idempotency_key=data.get("idempotency_key"),
            idempotency_expires_at=_dt(data.get("idempotency_expires_at")),
            parent_execution_id=data.get("parent_execution_id"),
            parent_step_id=data.get("parent_step_id"),
            depth=data.get("depth") or 0,
            cancellation=Cancellation.from_dict(data.get("cancellation")),
            retry_attempts=dict(data.get("retry_attempts") or {}),
            execution_timeout=_td(data.get("execution_timeout_ms")),
            wait_timeout=_td(data.get("wait_timeout_ms")),
            deadline_at=_dt(data.get("deadline_at")),
            checkpoint=data.get("checkpoint"),
            event_seq=data.get("event_seq", 0),
        )

    def to_dict(self) -> dict[str, Any]:
        """Full JSON shape (header, context and history) for the CLI and APIs."""
        out = self.header_dict()
        out["context"] = self.context
        out["history"] = [h.to_dict() for h in self.history]
        return out


def _ms(value: timedelta | None) -> float | None:
    return value.total_seconds() * 1000 if value is not None else None


def _td(value: Any) -> timedelta | None:
    return timedelta(milliseconds=value) if value is not None else None


_new_execution = object.__new__
_EXECUTION_SLOTS: tuple[str, ...] = tuple(Execution.__slots__)

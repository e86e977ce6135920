"""Events: persisted per execution with a monotonic sequence, delivered to listeners."""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["EVENT_TYPES", "Event"]

EVENT_TYPES = (
    "execution.created",
    "execution.started",
    "execution.waiting",
    "execution.resumed",
    "execution.completed",
    "execution.failed",
    "execution.cancelled",
    "execution.recovered",
    "step.started",
    "step.completed",
    "step.failed",
    "step.retry",
    "step.timeout",
    "transition",
    "idempotency.hit",
    "signal.received",
    "task.created",
    "task.completed",
    "task.cancelled",
    "token.forked",
    "token.joined",
    "subflow.started",
    "subflow.completed",
    "timer.scheduled",
    "timer.fired",
    "flow.registered",
    "handler.registered",
    "schedule.fired",
    "schedule.skipped",
    "trigger.received",
    "form.submitted",
)


class Event:
    """One thing that happened. ``data`` holds the payload (``execution_id`` included).

    Events are values: treat them as read-only.
    """

    __slots__ = ("data", "execution_id", "sequence", "tenant_id", "timestamp", "type")

    def __init__(
        self,
        type: str,
        execution_id: str | None,
        timestamp: datetime,
        data: dict[str, Any],
        sequence: int = 0,
        tenant_id: str | None = None,
    ) -> None:
        self.type = type
        self.execution_id = execution_id
        self.timestamp = timestamp
        self.data = data
        self.sequence = sequence
        self.tenant_id = tenant_id

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access to the flattened event."""
        return self.to_dict().get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """Flattened JSON-ready shape: payload fields plus type, timestamp, sequence."""
        out = {"execution_id": self.execution_id, **self.data}
        out["type"] = self.type
        out["timestamp"] = self.timestamp.isoformat()
        out["sequence"] = self.sequence
        if self.tenant_id is not None:
            out["tenant_id"] = self.tenant_id
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (
            self.type == other.type
            and self.execution_id == other.execution_id
            and self.sequence == other.sequence
            and self.timestamp == other.timestamp
            and self.data == other.data
        )

    def __hash__(self) -> int:
        return hash((self.type, self.execution_id, self.sequence))

    def __repr__(self) -> str:
        return f"Event({self.type!r}, {self.execution_id!r}, seq={self.sequence}, {self.data!r})"

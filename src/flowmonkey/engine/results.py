"""What the engine's calls return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowmonkey.model.execution import ErrorInfo, Execution, ExecutionStatus

__all__ = ["CancelResult", "CreateResult", "RunResult", "SimulationResult", "StepResult"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateResult:
    """``engine.create``: the execution, and whether it was created (False on an
    idempotency hit)."""

    execution: Execution
    created: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """Where an execution stands after ``run``/``resume``/``signal``."""

    execution: Execution
    status: ExecutionStatus
    wait_reason: str | None = None
    wake_at: datetime | None = None
    error: ErrorInfo | None = None

    @property
    def done(self) -> bool:
        """True once the execution is terminal."""
        return self.status.is_terminal

    @property
    def context(self) -> dict[str, Any]:
        """Shortcut for ``execution.context``."""
        return self.execution.context

    @classmethod
    def of(cls, execution: Execution) -> RunResult:
        """Summarise an execution."""
        return cls(
            execution=execution,
            status=execution.status,
            wait_reason=execution.wait_reason,
            wake_at=execution.wake_at,
            error=execution.error,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """``engine.step``: what one step did."""

    step_id: str | None
    outcome: str | None
    """``success``, ``failure``, ``wait``, or ``None`` when no handler ran."""
    next_step_id: str | None
    status: ExecutionStatus
    execution: Execution


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelResult:
    """``engine.cancel``: whether it was cancelled; if not, ``error`` says why."""

    cancelled: bool
    execution: Execution | None = None
    previous_status: ExecutionStatus | None = None
    error: str | None = None
    children_cancelled: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationResult:
    """``engine.simulate``: the path taken and the final state; nothing was stored."""

    status: ExecutionStatus
    path: list[str]
    context: dict[str, Any]
    execution: Execution
    events: list[Any] = field(default_factory=list)

"""Request bodies (unknown fields refused: 422 naming them) and documented answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BulkBody",
    "BulkFilter",
    "BulkOut",
    "CancelBody",
    "CancelOut",
    "CompleteTaskBody",
    "EventsOut",
    "ExecutionOut",
    "ExecutionPage",
    "FlowList",
    "FlowSaved",
    "HistoryOut",
    "ProblemOut",
    "ResumeBody",
    "SignalBody",
    "StartBody",
    "TaskOut",
    "TaskPage",
    "TokenResumeBody",
    "TokenResumeOut",
]

StatusName = Literal["pending", "running", "waiting", "completed", "failed", "cancelled"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartBody(_Body):
    """``POST /api/v1/executions``."""

    flow_id: str = Field(min_length=1, max_length=200)
    version: str | None = Field(default=None, max_length=100)
    input: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    correlation_id: str | None = Field(default=None, max_length=200)
    tenant_id: str | None = Field(default=None, min_length=1, max_length=200)
    wait: float = Field(default=0, ge=0, le=60, description="Seconds to wait for an outcome.")


class ResumeBody(_Body):
    """``POST /api/v1/executions/{id}/resume``."""

    data: Any = None
    token: str | None = Field(default=None, max_length=500)


class SignalBody(_Body):
    """``POST /api/v1/executions/{id}/signal``."""

    step_id: str = Field(min_length=1, max_length=200)
    port: str | None = Field(default=None, max_length=200)
    payload: Any = None


class CancelBody(_Body):
    """``POST /api/v1/executions/{id}/cancel``."""

    reason: str | None = Field(default=None, max_length=2000)


class TokenResumeBody(_Body):
    """``POST /api/v1/resume/{token}``."""

    data: Any = None


class CompleteTaskBody(_Body):
    """``POST /api/v1/tasks/{id}/complete``."""

    port: str | None = Field(default=None, max_length=200)
    data: Any


class BulkFilter(_Body):
    """Which executions a bulk action matches (all given fields must match)."""

    status: (
        list[Literal["pending", "running", "waiting", "completed", "failed", "cancelled"]] | None
    ) = None
    flow_id: str | None = Field(default=None, max_length=200)
    correlation_id: str | None = Field(default=None, max_length=200)
    created_before: str | None = None
    created_after: str | None = None


class BulkBody(_Body):
    """``POST /api/v1/executions/bulk``."""

    action: Literal["cancel", "retry"]
    ids: list[str] | None = Field(default=None, max_length=10_000)
    filter: BulkFilter | None = None
    reason: str | None = Field(default=None, max_length=2000)
    dry_run: bool = False
    tenant_id: str | None = Field(default=None, min_length=1, max_length=200)


# -- answers (documentation; extra fields allowed so the spec stays true as shapes grow) --


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class ProblemOut(_Out):
    """RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, str]] | None = None


class ExecutionOut(_Out):
    """An execution (``Execution.to_dict()``; listings omit context and history)."""

    id: str
    flow_id: str
    flow_version: str
    status: str
    tenant_id: str | None = None
    created_at: str


class ExecutionPage(_Out):
    """A page of executions, newest first."""

    items: list[ExecutionOut]
    next_cursor: str | None


class FlowSummary(_Out):
    """A flow id with its stored versions (newest first)."""

    id: str
    versions: list[str]
    latest: str


class FlowList(_Out):
    """Every flow."""

    items: list[FlowSummary]


class FlowSaved(_Out):
    """A saved flow version."""

    id: str
    version: str


class HistoryOut(_Out):
    """Step records, in order."""

    items: list[dict[str, Any]]


class EventsOut(_Out):
    """Events, in order."""

    items: list[dict[str, Any]]


class CancelOut(_Out):
    """``cancel``'s answer."""

    cancelled: bool
    execution: ExecutionOut


class TokenResumeOut(_Out):
    """``resume/{token}``'s answer."""

    execution_id: str
    status: str


class TaskOut(_Out):
    """A user task with its form."""

    id: str
    execution_id: str
    step_id: str
    status: str


class TaskPage(_Out):
    """A page of tasks, newest first."""

    items: list[TaskOut]
    next_cursor: str | None


class BulkFailure(_Out):
    """One execution a bulk action could not act on."""

    id: str
    code: str


class BulkOut(_Out):
    """What a bulk action did."""

    matched: int
    succeeded: int
    failed: list[BulkFailure]

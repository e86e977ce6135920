"""Records kept next to executions: resume tokens and user tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["ResumeTokenRecord", "Task"]


@dataclass(slots=True, kw_only=True)
class ResumeTokenRecord:
    """A stored resume token. Only the SHA-256 of the token is stored, never the token."""

    token_hash: str
    execution_id: str
    step_id: str
    created_at: datetime
    expires_at: datetime | None
    status: str = "active"
    """``active``, ``used`` or ``revoked``."""
    used_at: datetime | None = None


@dataclass(slots=True, kw_only=True)
class Task:
    """A user task created by a ``userTask`` step: an inbox item a person completes."""

    id: str
    execution_id: str
    step_id: str
    tenant_id: str | None = None
    title: str = ""
    description: str | None = None
    assignee: str | None = None
    role: str | None = None
    priority: str = "normal"
    status: str = "pending"
    """``pending``, ``completed``, ``cancelled`` or ``expired``."""
    form: dict[str, Any] | None = None
    output: Any = None
    created_at: datetime
    due_at: datetime | None = None
    completed_at: datetime | None = None
    completed_by: str | None = None
    token_id: str | None = None
    visit: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

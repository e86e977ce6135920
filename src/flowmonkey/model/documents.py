"""Webhook triggers and forms as stored documents, and form submissions.

Triggers and forms are definitions the service reads on each request; the store keeps
each as a JSON document under a ``kind`` (``trigger`` or ``form``). Their meaning (and
validation) lives in the API layer that serves them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["FormSubmission", "TriggerDocument"]


@dataclass(slots=True, kw_only=True)
class TriggerDocument:
    """One stored webhook trigger or form definition."""

    kind: str
    """``trigger`` or ``form``."""
    id: str
    tenant_id: str | None = None
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class FormSubmission:
    """One accepted form submission and the execution it started."""

    id: str = field(default_factory=lambda: "sub_" + uuid.uuid4().hex[:16])
    form_id: str
    data: dict[str, Any]
    created_at: datetime
    execution_id: str | None = None
    dedupe_key: str | None = None
    """The submission's values of the form's ``dedupe_on`` fields (``None``: no dedupe)."""
    client: str | None = None
    """The client address it came from."""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (the ``client`` address is not exposed)."""
        return {
            "id": self.id,
            "form_id": self.form_id,
            "data": self.data,
            "execution_id": self.execution_id,
            "created_at": self.created_at.isoformat(),
        }

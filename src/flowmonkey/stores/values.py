"""The values the ``Store`` protocol takes and returns: leases, step commits, queries,
pages. (``stores.base`` re-exports them with the protocol.)"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus, StepRecord, Token
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.model.tables import TableRow

__all__ = [
    "Acquired",
    "ExecutionQuery",
    "Lease",
    "Page",
    "PurgeBatch",
    "PurgeQuery",
    "StepCommit",
    "StoredFlow",
    "TaskQuery",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """Proof that ``owner`` may commit to ``execution_id`` until ``expires_at``."""

    execution_id: str
    owner: str
    token: int
    """Fencing token: strictly increasing per execution, checked by every commit."""
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Acquired:
    """The result of ``acquire``: the execution as stored, and the lease if one was granted.

    ``lease`` is ``None`` when the execution is terminal or another owner holds an
    unexpired lease (unless stolen).
    """

    execution: Execution
    lease: Lease | None
    recovered: bool = False
    """True when the lease was taken from a ``running`` execution whose previous lease
    expired (its holder crashed or stalled): the engine counts a new run."""


@dataclass(slots=True, kw_only=True)
class StepCommit:
    """Everything one step (or one engine operation) changes, written in ONE transaction.

    ``execution`` is the engine's working copy: the store writes its mutable header
    fields (status, position/tokens, wake/wait fields, errors, counters, timestamps,
    cancellation, retry attempts, checkpoint, event_seq). Immutable fields set at create
    (flow, tenant, metadata, idempotency, parent, timeouts) are never rewritten.
    The context is written as a delta so a step costs what it changed, not the size of
    the whole context.

    A store reads ``execution`` (and everything else here) before its first ``await``:
    the engine may change its working copy as soon as ``commit`` yields.
    """

    execution: Execution
    changed_tokens: Sequence[Token] | None = None
    """When set, only these tokens changed since the previous commit (a branch step of
    a wide fork); ``None`` means any may have. A store may use it to avoid rewriting
    every token."""
    context_set: dict[str, bytes] = field(default_factory=dict)
    """Top-level context key -> JSON (orjson bytes) of its complete new value."""
    context_delete: Sequence[str] = ()
    history: Sequence[StepRecord] = ()
    events: Sequence[Event] = ()
    """Events with sequences already assigned (``execution.event_seq`` is the last)."""
    resume_tokens: Sequence[ResumeTokenRecord] = ()
    """New resume tokens to store."""
    use_resume_token: str | None = None
    """Hash of a token to mark ``used`` (fails with InvalidResumeToken if not active)."""
    revoke_resume_tokens: bool = False
    revoke_step_tokens: Sequence[str] = ()
    """Revoke the active resume tokens of these steps of the execution (their waits
    ended, so a token minted for one must not resume a later visit)."""
    """Revoke every active resume token of the execution (cancel/fail/complete)."""
    tasks: Sequence[Task] = ()
    """User tasks to create (ignored when a task with the same id exists) or update."""
    cancel_pending_tasks: bool = False
    """Mark every pending task of the execution ``cancelled``."""
    release: bool = False
    """Drop the lease after this commit (the execution becomes claimable by anyone)."""
    table_rows: Sequence[TableRow] = ()
    """Rows the step's pipes produced (already validated against their tables, whose
    existence the engine checked): written in this same transaction, or not at all."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionQuery:
    """Filters for ``Store.list``. Results are newest first (``created_at``, then ``id``)."""

    status: Sequence[ExecutionStatus] | None = None
    flow_id: str | None = None
    tenant_id: str | None = None
    correlation_id: str | None = None
    parent_execution_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = 100
    cursor: str | None = None
    """Opaque; the ``next_cursor`` of the previous page."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskQuery:
    """Filters for ``Store.list_tasks``."""

    assignee: str | None = None
    role: str | None = None
    status: str | None = "pending"
    tenant_id: str | None = None
    execution_id: str | None = None
    limit: int = 100
    newest_first: bool = False
    """List newest first instead of oldest first (by ``(created_at, id)``)."""
    after: tuple[datetime, str] | None = None
    """Only tasks past this ``(created_at, id)`` in the listing's order (keyset
    pagination: the position of the last task of the previous page)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeQuery:
    """Which finished executions one ``Store.purge`` call removes (one small batch).

    An execution is purged with everything it owns (context, history, events, resume
    tokens, tasks, its idempotency key) when it is terminal, was created and last updated
    before ``older_than``, and:

    - it has no parent, or its parent is gone: a child of a kept parent is kept (it goes
      with its parent's tree when the parent is purged);
    - every descendant is terminal (they are purged with it, whatever their own age,
      status or flow);
    - neither it nor a descendant holds an idempotency key still valid at ``now``: within
      its window a duplicate start must keep finding the execution (SEMANTICS.md).
    """

    older_than: datetime
    now: datetime
    status: Sequence[ExecutionStatus] | None = None
    """Terminal statuses to purge; ``None``: all three."""
    flow_id: str | None = None
    exclude_flow_ids: Sequence[str] = ()
    """Flows left alone (their own retention applies)."""
    limit: int = 200
    """Most executions examined by this call (one short write transaction)."""
    cursor: str | None = None
    """The ``next_cursor`` of the previous batch of the same pass."""
    dry_run: bool = False
    """Count what would be purged; change nothing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeBatch:
    """What one ``Store.purge`` call did."""

    executions: int
    """Executions purged (would be, for a dry run), descendants included."""
    rows: int
    """Rows deleted over every table (0 for a dry run)."""
    next_cursor: str | None
    """Pass it back for the next batch; ``None`` when the pass is complete."""


T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    """One page of a listing."""

    items: builtins.list[T]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFlow:
    """A flow definition saved in the store (the FlowMonkey JSON shape)."""

    flow_id: str
    version: str
    definition: dict[str, Any]
    created_at: datetime

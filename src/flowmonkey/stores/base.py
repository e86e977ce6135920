"""The Store protocol: durable state for executions, step commits, leases and timers.

Every method is one atomic transaction. Time always comes in as an argument (from the
engine's clock), so a ``FakeClock`` drives every backend the same way. Implementations
raise only ``errors.StoreError`` subclasses (plus the domain errors named per method),
with the driver's exception chained as ``__cause__``.

Leases are the fencing mechanism: ``acquire``/``claim`` hand out a ``Lease`` whose
``token`` increases every time the execution changes hands. ``commit`` succeeds only while
the stored token still equals the lease's, so a worker that stalled and lost its lease can
never overwrite the work of the worker that took over (it gets ``LeaseLost``).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from flowmonkey.model.documents import FormSubmission, TriggerDocument
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution
from flowmonkey.model.keys import ApiKey
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.model.schedules import Schedule, ScheduleRun
from flowmonkey.model.tables import RowQuery, TableDef, TableRow
from flowmonkey.stores.table_export import ExportFormat
from flowmonkey.stores.values import (
    Acquired,
    ExecutionQuery,
    Lease,
    Page,
    PurgeBatch,
    PurgeQuery,
    StepCommit,
    StoredFlow,
    TaskQuery,
)

__all__ = [
    "Acquired",
    "ExecutionQuery",
    "Lease",
    "Page",
    "PurgeBatch",
    "PurgeQuery",
    "StepCommit",
    "Store",
    "StoredFlow",
    "TaskQuery",
]


@runtime_checkable
class Store(Protocol):
    """Durable state of executions. See the module docstring for the rules."""

    async def initialize(self) -> None:
        """Open connections and create/migrate the schema. Idempotent."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...

    # -- executions -------------------------------------------------------------------

    async def create(
        self, execution: Execution, events: Sequence[Event] = (), *, lease: Lease | None = None
    ) -> tuple[Execution, bool]:
        """Insert a new execution with its initial context and events, atomically.

        With ``lease`` (token 1), the new execution is stored already leased to
        ``lease.owner`` (the engine's ``start`` saves a separate acquire this way); no
        lease is taken on an idempotency hit.

        When ``execution.idempotency_key`` is set and an execution with the same
        (tenant_id, flow_id, key) exists whose ``idempotency_expires_at`` is after
        ``execution.created_at``, nothing is written and ``(existing, False)`` is
        returned. Otherwise ``(execution, True)``. Two concurrent creates with one key
        produce exactly one execution.
        """
        ...

    async def get(self, execution_id: str, *, history: bool = True) -> Execution | None:
        """Return the execution (context included; history when asked) or ``None``."""
        ...

    async def list(self, query: ExecutionQuery) -> Page[Execution]:
        """Return a page of executions (no history), newest first.

        Raises:
            InvalidCursor: ``query.cursor`` is not a ``next_cursor`` this store returned.
        """
        ...

    async def find_children(self, parent_execution_id: str) -> builtins.list[Execution]:
        """Return the direct children of an execution (no history)."""
        ...

    # -- leases and step commits ----------------------------------------------------------

    async def acquire(
        self,
        execution_id: str,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        steal: bool = False,
        start: bool = True,
        failed: bool = False,
    ) -> Acquired:
        """Lease one execution to ``owner``.

        ``failed=True`` also grants a lease on a ``failed`` execution (``Engine.retry``
        revives it); other terminal executions are never leased.

        Granted when the execution is not terminal and its lease is free, expired,
        already ``owner``'s, or ``steal`` is true. Granting bumps the fencing token.
        A ``pending`` execution becomes ``running`` (``started_at`` set if unset) unless
        ``start`` is false (the caller only inspects or cancels it).
        ``recovered`` is set when the execution was ``running`` under another owner's
        lease that had expired (or was stolen).

        Raises:
            ExecutionNotFound: no such execution.
        """
        ...

    async def commit(self, lease: Lease, commit: StepCommit) -> None:
        """Apply one step's changes atomically, fenced by ``lease``.

        Raises:
            LeaseLost: the stored fencing token differs (nothing is written).
            InvalidResumeToken: ``use_resume_token`` is not an active token of this
                execution (nothing is written).
        """
        ...

    async def heartbeat(self, lease: Lease, *, now: datetime, lease_for: timedelta) -> Lease:
        """Extend a lease. Raises ``LeaseLost`` if it was taken over or revoked."""
        ...

    async def release(self, lease: Lease) -> None:
        """Drop a lease without changing the execution (no error if already lost)."""
        ...

    async def save_checkpoint(self, lease: Lease, checkpoint: dict[str, Any] | None) -> None:
        """Persist ``ctx.checkpoint`` data for the running step (fenced; ``LeaseLost``)."""
        ...

    async def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        limit: int,
        flows: Collection[tuple[str, str]] | None = None,
    ) -> builtins.list[Acquired]:
        """Lease up to ``limit`` runnable executions, oldest first.

        Runnable: ``pending`` with no live lease; ``waiting`` with ``wake_at <= now``
        and no live lease; ``running`` whose lease expired. Same effects as ``acquire``.
        ``flows``: only executions whose ``(flow_id, flow_version)`` is one of these (a
        worker claims only what it can run; an empty collection claims nothing).
        """
        ...

    async def count_by_status(
        self, *, tenant_id: str | None = None, flow_id: str | None = None
    ) -> dict[str, int]:
        """How many executions have each status (statuses with none are left out),
        filtered like ``list`` by tenant and flow (``None``: any)."""
        ...

    async def runnable_by_flow(self, *, now: datetime) -> dict[tuple[str, str], int]:
        """How many executions are runnable (as ``claim`` defines it) per
        ``(flow_id, flow_version)``: lets a worker notice work it cannot run."""
        ...

    async def due(self, *, now: datetime, limit: int) -> builtins.list[str]:
        """Ids of unleased executions with due work for the scheduler.

        Due: ``waiting`` with ``wake_at <= now``; non-terminal with
        ``deadline_at <= now``; ``waiting`` with a token whose ``wait_deadline_at <= now``
        (stores index the earliest one as ``wait_deadline_at``).
        """
        ...

    async def stale(
        self, *, now: datetime, updated_before: datetime, limit: int
    ) -> builtins.list[str]:
        """Ids of ``running`` executions whose lease expired or, having no lease, were
        last updated before ``updated_before``."""
        ...

    # -- events, resume tokens, tasks -------------------------------------------------------

    async def append_event(
        self, execution_id: str, type: str, data: dict[str, Any], *, at: datetime, now: datetime
    ) -> Event | None:
        """Append one event to an execution's log with its next sequence, atomically.

        Done only while no process holds a live lease on it (a terminal execution, or one
        unleased or whose lease expired at ``now``): a lease holder's commits number the
        events themselves. An expired lease is fenced (its token bumped, as a takeover
        does) so its stalled holder cannot commit a clashing sequence later.

        Returns:
            The stored event, or ``None`` (a live lease is held: nothing written).

        Raises:
            ExecutionNotFound: no such execution.
        """
        ...

    async def events(self, execution_id: str, *, after: int = 0) -> builtins.list[Event]:
        """Persisted events of one execution with ``sequence > after``, in order."""
        ...

    async def get_resume_token(self, token_hash: str) -> ResumeTokenRecord | None:
        """Look a resume token up by its SHA-256 hex digest."""
        ...

    async def get_task(self, task_id: str) -> Task | None:
        """Return one user task."""
        ...

    async def list_tasks(self, query: TaskQuery) -> builtins.list[Task]:
        """List user tasks, oldest first."""
        ...

    # -- retention --------------------------------------------------------------------------

    async def purge(self, query: PurgeQuery) -> PurgeBatch:
        """Delete one batch of old finished executions (see ``PurgeQuery``), atomically.

        Examines at most ``query.limit`` executions in ``(status, created_at, id)`` order
        from ``query.cursor``, so a pass over any number of rows is a series of short
        transactions that never hold the write lock for long.

        Raises:
            ValueError: a non-terminal status was asked for, or the cursor is malformed.
        """
        ...

    # -- flow definitions -------------------------------------------------------------------

    async def save_flow(self, definition: dict[str, Any], *, now: datetime) -> bool:
        """Store a flow version (JSON shape). Returns False when that exact version
        already exists with the same definition; raises ``FlowValidationError`` when it
        exists with a different one (versions are immutable)."""
        ...

    async def get_flow(self, flow_id: str, version: str | None = None) -> StoredFlow | None:
        """One stored version, or the latest by semver when ``version`` is None."""
        ...

    async def list_flows(self) -> builtins.list[StoredFlow]:
        """The latest version of every stored flow, by flow id."""
        ...

    async def flow_versions(self, flow_id: str) -> builtins.list[str]:
        """Stored versions of one flow, newest (semver) first."""
        ...

    # -- API keys of the HTTP service (see ``stores/keys.py``) -----------------------------

    async def create_api_key(self, key: ApiKey) -> None:
        """Store a new key. Raises ``StoreError`` when its id or hash already exists."""
        ...

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """One key by id, or ``None``."""
        ...

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The key whose secret hashes (SHA-256 hex) to ``key_hash``, or ``None``."""
        ...

    async def list_api_keys(self) -> builtins.list[ApiKey]:
        """Every key (revoked ones too), newest first."""
        ...

    async def revoke_api_key(self, key_id: str, *, now: datetime) -> ApiKey | None:
        """Mark a key revoked at ``now`` (kept if already revoked); ``None`` if unknown."""
        ...

    async def touch_api_key(self, key_id: str, *, now: datetime) -> None:
        """Record that the key was used at ``now`` (``last_used_at``)."""
        ...

    # -- schedules (see ``stores/schedules.py``) ---------------------------------------------

    async def create_schedule(self, schedule: Schedule) -> None:
        """Store a new schedule. Raises ``AlreadyExists`` when the id is taken."""
        ...

    async def save_schedule(self, schedule: Schedule) -> bool:
        """Replace a schedule's definition and firing state and drop its lease (a fire in
        flight then fails its fenced ``release_schedule``). False if it does not exist."""
        ...

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """One schedule, or ``None``."""
        ...

    async def list_schedules(
        self, *, tenant_id: str | None = None, after: str | None = None, limit: int | None = None
    ) -> builtins.list[Schedule]:
        """Schedules by id (of one tenant when given): those with an id after ``after``
        (keyset pagination), at most ``limit`` (all when ``None``)."""
        ...

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule and its runs; False if it did not exist."""
        ...

    async def claim_schedules(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        limit: int,
        schedule_id: str | None = None,
    ) -> builtins.list[Schedule]:
        """Lease up to ``limit`` due schedules to ``owner``, atomically.

        Due: not paused, and ``next_fire_at <= now`` or a ``buffered_for`` time waiting.
        Only schedules whose lease is free, expired or already ``owner``'s are taken.
        With ``schedule_id``, lease that one schedule whether due or not (run now,
        backfill); an empty list when another owner holds it.
        """
        ...

    async def release_schedule(self, schedule: Schedule, *, owner: str) -> bool:
        """Write ``next_fire_at``, ``last_execution_id`` and ``buffered_for`` of a schedule
        leased to ``owner`` and drop the lease. False (nothing written) when ``owner`` no
        longer holds it."""
        ...

    async def record_schedule_run(self, run: ScheduleRun) -> ScheduleRun:
        """Record what happened at ``run.scheduled_for`` unless that time already has a
        run; returns the stored run (the first one wins)."""
        ...

    async def fire_schedule_time(
        self, run: ScheduleRun, execution: Execution | None, events: Sequence[Event] = ()
    ) -> tuple[ScheduleRun, bool]:
        """Record ``run`` and create ``execution`` (its id is ``run.execution_id``) in ONE
        transaction: the exactly-once step of a schedule fire.

        When ``(schedule_id, scheduled_for)`` already has a run, nothing is written and
        ``(that run, False)`` is returned. Otherwise the run is stored, and with
        ``execution`` the execution is created as ``create`` would (idempotency key
        honoured: when an unexpired execution holds the key, the stored run points at that
        one instead). Returns ``(stored run, whether the execution was created)``.
        """
        ...

    async def fire_schedule_times(
        self, items: Sequence[tuple[ScheduleRun, Execution | None, Sequence[Event]]]
    ) -> builtins.list[tuple[ScheduleRun, bool]]:
        """``fire_schedule_time`` of each ``(run, execution, events)``, in order, in ONE
        transaction (all stored or none): what a worker fires per claimed batch, so the
        batch costs one commit instead of one per time."""
        ...

    async def release_schedules(self, schedules: Sequence[Schedule], *, owner: str) -> int:
        """``release_schedule`` of each, in one transaction; how many ``owner`` still held."""
        ...

    async def update_schedule_run(self, run: ScheduleRun) -> None:
        """Overwrite the run of ``(schedule_id, scheduled_for)`` (a buffered run started)."""
        ...

    async def list_schedule_runs(
        self, schedule_id: str, *, limit: int = 50, before: datetime | None = None
    ) -> builtins.list[ScheduleRun]:
        """Runs of one schedule, newest scheduled time first; with ``before``, only runs
        scheduled before it (keyset pagination: the last time of the previous page)."""
        ...

    async def next_schedule_time(self) -> datetime | None:
        """The earliest ``next_fire_at`` of the unpaused schedules (``None``: none)."""
        ...

    # -- webhook triggers, forms, submissions (see ``stores/documents.py``) -----------------

    async def create_document(self, doc: TriggerDocument) -> None:
        """Store a trigger or form. Raises ``AlreadyExists`` when ``(kind, id)`` is taken."""
        ...

    async def update_document(self, doc: TriggerDocument) -> bool:
        """Replace a document's tenant, spec and ``updated_at``; False if missing."""
        ...

    async def get_document(self, kind: str, doc_id: str) -> TriggerDocument | None:
        """One document, or ``None``."""
        ...

    async def list_documents(
        self,
        kind: str,
        *,
        tenant_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[TriggerDocument]:
        """Documents of one kind by id (of one tenant when given): those with an id after
        ``after`` (keyset pagination), at most ``limit`` (all when ``None``)."""
        ...

    async def delete_document(self, kind: str, doc_id: str) -> bool:
        """Delete a document (a form's submissions with it); False if missing."""
        ...

    async def add_form_submission(
        self, submission: FormSubmission, *, max_submissions: int | None = None
    ) -> str:
        """Check and record a submission in ONE transaction: ``"duplicate"`` when one of
        the same form has its ``dedupe_key``, ``"full"`` at ``max_submissions``, else
        ``"ok"`` (recorded)."""
        ...

    async def delete_form_submission(self, submission_id: str) -> None:
        """Forget a submission whose execution could not be created."""
        ...

    async def list_form_submissions(
        self, form_id: str, *, limit: int = 50, before: tuple[datetime, str] | None = None
    ) -> builtins.list[FormSubmission]:
        """Submissions of one form, newest first; with ``before`` (the ``(created_at, id)``
        of the last one of the previous page), only those after it in that order."""

    # -- data tables (see ``stores/tables.py``) ---------------------------------------------

    async def create_table(self, table: TableDef) -> tuple[TableDef, bool]:
        """Store a new table and create its indexes; returns ``(stored, created)``.

        The same definition again returns the stored one with ``created=False``.

        Raises:
            TableConflict: a table with this name has another definition.
        """
        ...

    async def get_table(self, name: str) -> TableDef | None:
        """One table by name, or ``None``."""
        ...

    async def list_tables(self) -> builtins.list[TableDef]:
        """Every table, by name."""
        ...

    async def insert_rows(self, rows: Sequence[TableRow]) -> None:
        """Insert rows outside any step (all or none; ids must be new).

        Raises:
            TableNotFound: a row names a table that does not exist (nothing is written).
        """
        ...

    async def query_rows(self, table: TableDef, query: RowQuery) -> Page[TableRow]:
        """One page of ``table``'s rows matching ``query`` (see ``RowQuery``).

        Raises:
            InvalidTable: the cursor is malformed (code BAD_CURSOR).
        """
        ...

    def export_rows(
        self, table: TableDef, query: RowQuery, format: ExportFormat
    ) -> AsyncIterator[bytes]:
        """Every row matching ``query``, in its order, as JSON Lines or CSV chunks
        (``stores/table_export.py`` defines both shapes); reads ``query.limit`` rows at a
        time, so memory stays flat however many rows there are."""
        ...

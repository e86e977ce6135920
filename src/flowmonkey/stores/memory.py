"""``MemoryStore``: the in-process store for tests and simulation.

It passes the same contract suite as the durable stores. Context values are kept as
JSON bytes per top-level key (what the engine hands over in a ``StepCommit``), so a
commit costs what the step changed and nobody can mutate stored state by reference.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

import orjson

from flowmonkey import errors
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus, StepRecord, Token, TokenStatus
from flowmonkey.model.keys import ApiKey
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.model.tables import TableDef, TableRow
from flowmonkey.stores import memory_purge
from flowmonkey.stores.base import (
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
from flowmonkey.stores.cursors import decode_cursor, encode_cursor
from flowmonkey.stores.documents import MemoryDocuments
from flowmonkey.stores.keys import MemoryKeys
from flowmonkey.stores.schedules import MemorySchedules
from flowmonkey.stores.tables import MemoryTables
from flowmonkey.versions import semver_key

__all__ = ["MemoryStore"]

_RUNNING = ExecutionStatus.RUNNING
_PENDING = ExecutionStatus.PENDING
_WAITING = ExecutionStatus.WAITING


class _Row:
    """One stored execution: header, context bytes per key, history, events, lease."""

    __slots__ = (
        "context",
        "events",
        "execution",
        "history",
        "lease_expires",
        "lease_owner",
        "lease_token",
        "token_index",
    )

    def __init__(self, execution: Execution, context: dict[str, bytes]) -> None:
        self.execution = execution  # header only; context/history kept apart
        self.context = context
        # Tuples of atomic values, not Event/StepRecord objects: the cyclic GC stops
        # tracking such tuples (and their payload dicts), so a store holding every event
        # of every execution does not make each collection slower as it grows.
        self.history: builtins.list[tuple[Any, ...]] = []
        self.events: builtins.list[tuple[Any, ...]] = []
        self.lease_owner: str | None = None
        self.lease_token = 0
        self.lease_expires: datetime | None = None
        self.token_index: dict[str, int] | None = None
        """Position of each stored token, kept while branch steps commit token deltas."""


# Header fields a commit may change; copied in place (cheaper than dataclasses.replace,
# which dominated the in-memory step cost).
_MUTABLE = (
    "status",
    "current_step_id",
    "wake_at",
    "wait_reason",
    "error",
    "last_error",
    "step_count",
    "run_number",
    "updated_at",
    "started_at",
    "finished_at",
    "cancellation",
    "deadline_at",
    "checkpoint",
    "event_seq",
)
_get_mutable = attrgetter(*_MUTABLE)


_RECORD_FIELDS = (
    "step_id", "handler_type", "attempt", "run_number", "outcome", "started_at",
    "finished_at", "duration_ms", "error", "token_id",
)  # fmt: skip
_record_fields = attrgetter(*_RECORD_FIELDS)


def _record(fields: tuple[Any, ...]) -> StepRecord:
    return StepRecord(**dict(zip(_RECORD_FIELDS, fields, strict=True)))


def _update_header(row: _Row, execution: Execution, changed: Sequence[Token] | None) -> None:
    header = row.execution
    (
        header.status,
        header.current_step_id,
        header.wake_at,
        header.wait_reason,
        header.error,
        header.last_error,
        header.step_count,
        header.run_number,
        header.updated_at,
        header.started_at,
        header.finished_at,
        header.cancellation,
        header.deadline_at,
        header.checkpoint,
        header.event_seq,
    ) = _get_mutable(execution)
    stored = header.tokens
    index = row.token_index
    if changed is not None and index is not None and len(stored) == len(execution.tokens):
        # A branch step of a wide fork: copy the tokens it changed, not all of them.
        for token in changed:
            i = index.get(token.id)
            if i is None or stored[i].id != token.id:
                break
            stored[i] = token.copy()
        else:
            header.retry_attempts = dict(execution.retry_attempts)
            return
    header.tokens = [t.copy() for t in execution.tokens]
    row.token_index = {t.id: i for i, t in enumerate(header.tokens)} if changed else None
    header.retry_attempts = dict(execution.retry_attempts)


def _header_copy(execution: Execution) -> Execution:
    # Tokens are mutable objects; copy them so later engine mutations do not leak in.
    return execution.clone(context={}, history=[])


class MemoryStore(MemoryKeys, MemorySchedules, MemoryDocuments, MemoryTables):
    """In-memory ``Store``. Single event loop; every method is atomic by construction."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._idem: dict[tuple[str, str, str], str] = {}
        self._tokens: dict[str, ResumeTokenRecord] = {}
        self._tasks: dict[str, Task] = {}
        self._flows: dict[tuple[str, str], StoredFlow] = {}
        self._api_keys: dict[str, ApiKey] = {}
        self._schedules = {}
        self._schedule_leases = {}
        self._schedule_runs = {}
        self._documents = {}
        self._submissions = {}
        self._tables: dict[str, TableDef] = {}
        self._table_rows: dict[str, list[TableRow]] = {}
        self._row_seq = 0

    async def initialize(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close; data stays until the object is dropped."""

    def clear(self) -> None:
        """Drop everything (test helper)."""
        self.__init__()  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._rows)

    # -- executions -------------------------------------------------------------------

    def _load(self, row: _Row, *, history: bool) -> Execution:
        loads = orjson.loads
        return row.execution.clone(
            context={k: loads(v) for k, v in row.context.items()},
            history=[_record(r) for r in row.history] if history else [],
        )

    async def create(
        self, execution: Execution, events: Sequence[Event] = (), *, lease: Lease | None = None
    ) -> tuple[Execution, bool]:
        """Insert, honouring the (tenant, flow, key) idempotency window."""
        if execution.id in self._rows:
            raise errors.StoreError(f'execution id "{execution.id}" already exists')
        if execution.idempotency_key is not None:
            ikey = (execution.tenant_id or "", execution.flow_id, execution.idempotency_key)
            existing_id = self._idem.get(ikey)
            if existing_id is not None:
                row = self._rows[existing_id]
                expires = row.execution.idempotency_expires_at
                if expires is not None and expires > execution.created_at:
                    return self._load(row, history=True), False
            self._idem[ikey] = execution.id
        dumps = orjson.dumps
        row = _Row(_header_copy(execution), {k: dumps(v) for k, v in execution.context.items()})
        row.events.extend((e.type, e.timestamp, e.data, e.sequence, e.tenant_id) for e in events)
        if lease is not None:
            row.lease_owner = lease.owner
            row.lease_token = lease.token
            row.lease_expires = lease.expires_at
        self._rows[execution.id] = row
        # The caller built ``execution`` and the row holds its own copies, so handing the
        # object back shares nothing mutable with the store.
        return execution, True

    async def get(self, execution_id: str, *, history: bool = True) -> Execution | None:
        """Return a copy of the execution, or ``None``."""
        row = self._rows.get(execution_id)
        return self._load(row, history=history) if row is not None else None

    async def list(self, query: ExecutionQuery) -> Page[Execution]:
        """Filter, newest first, cursor-paginated."""
        rows = [r.execution for r in self._rows.values()]
        if query.status:
            wanted = set(query.status)
            rows = [e for e in rows if e.status in wanted]
        for attr in ("flow_id", "tenant_id", "correlation_id", "parent_execution_id"):
            value = getattr(query, attr)
            if value is not None:
                rows = [e for e in rows if getattr(e, attr) == value]
        if query.created_after is not None:
            rows = [e for e in rows if e.created_at >= query.created_after]
        if query.created_before is not None:
            rows = [e for e in rows if e.created_at < query.created_before]
        rows.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        if query.cursor:
            c_at, c_id = decode_cursor(query.cursor)
            rows = [e for e in rows if (e.created_at, e.id) < (c_at, c_id)]
        page = rows[: query.limit]
        next_cursor = None
        if len(rows) > query.limit and page:
            next_cursor = encode_cursor(page[-1].created_at, page[-1].id)
        items = [self._load(self._rows[e.id], history=False) for e in page]
        return Page(items=items, next_cursor=next_cursor)

    async def find_children(self, parent_execution_id: str) -> builtins.list[Execution]:
        """Direct children, oldest first."""
        rows = [
            r for r in self._rows.values() if r.execution.parent_execution_id == parent_execution_id
        ]
        rows.sort(key=lambda r: (r.execution.created_at, r.execution.id))
        return [self._load(r, history=False) for r in rows]

    # -- leases and commits -----------------------------------------------------------

    def _grant(
        self, row: _Row, owner: str, now: datetime, lease_for: timedelta, start: bool = True
    ) -> Acquired:
        # A running execution whose lease is being taken (expired or stolen) lost its
        # runner, whoever that was (a worker may reclaim its own expired lease).
        recovered = (
            row.execution.status is _RUNNING
            and row.lease_owner is not None
            and (
                row.lease_owner != owner
                or (row.lease_expires is not None and row.lease_expires <= now)
            )
        )
        row.lease_token += 1
        row.lease_owner = owner
        row.lease_expires = now + lease_for
        header = row.execution
        if start and header.status is _PENDING:
            header.status = _RUNNING
            if header.started_at is None:
                header.started_at = now
        lease = Lease(
            execution_id=header.id,
            owner=owner,
            token=row.lease_token,
            expires_at=row.lease_expires,
        )
        return Acquired(execution=self._load(row, history=True), lease=lease, recovered=recovered)

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
        """Lease one execution (see the protocol)."""
        row = self._rows.get(execution_id)
        if row is None:
            raise errors.ExecutionNotFound(execution_id)
        status = row.execution.status
        if status.is_terminal and not (failed and status is ExecutionStatus.FAILED):
            return Acquired(execution=self._load(row, history=True), lease=None)
        free = (
            row.lease_owner is None
            or row.lease_owner == owner
            or (row.lease_expires is not None and row.lease_expires <= now)
        )
        if not (free or steal):
            return Acquired(execution=self._load(row, history=True), lease=None)
        return self._grant(row, owner, now, lease_for, start)

    def _check(self, lease: Lease) -> _Row:
        row = self._rows.get(lease.execution_id)
        if row is None:
            raise errors.ExecutionNotFound(lease.execution_id)
        if row.lease_token != lease.token or row.lease_owner != lease.owner:
            raise errors.LeaseLost(lease.execution_id)
        return row

    async def commit(self, lease: Lease, commit: StepCommit) -> None:
        """Apply a step's delta if the lease still holds."""
        row = self._check(lease)
        execution = commit.execution
        if commit.table_rows:
            self._check_tables(commit.table_rows)  # before any change: all or nothing
        if commit.use_resume_token is not None:
            record = self._tokens.get(commit.use_resume_token)
            if record is None or record.execution_id != execution.id:
                raise errors.InvalidResumeToken("unknown token")
            if record.status != "active":
                raise errors.InvalidResumeToken(f"token is {record.status}")
            record.status = "used"
            record.used_at = execution.updated_at
        _update_header(row, execution, commit.changed_tokens)
        context = row.context
        for key in commit.context_delete:
            context.pop(key, None)
        context.update(commit.context_set)
        if commit.history:
            row.history.extend(_record_fields(r) for r in commit.history)
        if commit.events:
            row.events.extend(
                (e.type, e.timestamp, e.data, e.sequence, e.tenant_id) for e in commit.events
            )
        for token in commit.resume_tokens:
            self._tokens[token.token_hash] = replace(token)
        if commit.revoke_step_tokens:
            steps = set(commit.revoke_step_tokens)
            for record in self._tokens.values():
                if (
                    record.execution_id == execution.id
                    and record.step_id in steps
                    and record.status == "active"
                ):
                    record.status = "revoked"
        if commit.revoke_resume_tokens:
            for record in self._tokens.values():
                if record.execution_id == execution.id and record.status == "active":
                    record.status = "revoked"
        for task in commit.tasks:
            self._tasks[task.id] = replace(task, metadata=dict(task.metadata))
        if commit.table_rows:
            self._add_rows(commit.table_rows)
        if commit.cancel_pending_tasks:
            for task in self._tasks.values():
                if task.execution_id == execution.id and task.status == "pending":
                    task.status = "cancelled"
        if commit.release or execution.status.is_terminal:
            row.lease_owner = None
            row.lease_expires = None

    async def heartbeat(self, lease: Lease, *, now: datetime, lease_for: timedelta) -> Lease:
        """Extend the lease."""
        row = self._check(lease)
        row.lease_expires = now + lease_for
        return replace(lease, expires_at=row.lease_expires)

    async def release(self, lease: Lease) -> None:
        """Drop the lease if still held."""
        row = self._rows.get(lease.execution_id)
        if row is not None and row.lease_token == lease.token and row.lease_owner == lease.owner:
            row.lease_owner = None
            row.lease_expires = None

    async def save_checkpoint(self, lease: Lease, checkpoint: dict[str, Any] | None) -> None:
        """Store checkpoint data for the running step."""
        row = self._check(lease)
        row.execution.checkpoint = orjson.loads(orjson.dumps(checkpoint))

    def _runnable(self, row: _Row, now: datetime) -> bool:
        header = row.execution
        lease_free = row.lease_owner is None or (
            row.lease_expires is not None and row.lease_expires <= now
        )
        if not lease_free:
            return False
        if header.status is _PENDING:
            return True
        if header.status is _WAITING:
            return header.wake_at is not None and header.wake_at <= now
        return header.status is _RUNNING and row.lease_owner is not None

    async def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        limit: int,
        flows: Collection[tuple[str, str]] | None = None,
    ) -> builtins.list[Acquired]:
        """Lease up to ``limit`` runnable executions (of ``flows`` if given), oldest first."""
        rows = [r for r in self._rows.values() if self._runnable(r, now)]
        if flows is not None:
            keys = set(flows)
            rows = [r for r in rows if (r.execution.flow_id, r.execution.flow_version) in keys]
        rows.sort(key=lambda r: (r.execution.created_at, r.execution.id))
        return [self._grant(r, owner, now, lease_for) for r in rows[:limit]]

    async def count_by_status(
        self, *, tenant_id: str | None = None, flow_id: str | None = None
    ) -> dict[str, int]:
        """Executions per status, by tenant and flow."""
        out: dict[str, int] = {}
        for row in self._rows.values():
            header = row.execution
            if tenant_id is not None and header.tenant_id != tenant_id:
                continue
            if flow_id is not None and header.flow_id != flow_id:
                continue
            out[header.status.value] = out.get(header.status.value, 0) + 1
        return out

    async def runnable_by_flow(self, *, now: datetime) -> dict[tuple[str, str], int]:
        """Runnable executions per ``(flow_id, flow_version)``."""
        out: dict[tuple[str, str], int] = {}
        for row in self._rows.values():
            if self._runnable(row, now):
                key = (row.execution.flow_id, row.execution.flow_version)
                out[key] = out.get(key, 0) + 1
        return out

    async def due(self, *, now: datetime, limit: int) -> builtins.list[str]:
        """Unleased executions with a due wake, deadline or wait deadline."""
        out: builtins.list[tuple[datetime, str]] = []
        for row in self._rows.values():
            header = row.execution
            if header.status.is_terminal:
                continue
            if row.lease_owner is not None and (
                row.lease_expires is None or row.lease_expires > now
            ):
                continue
            candidates = []
            if header.status is _WAITING and header.wake_at is not None:
                candidates.append(header.wake_at)
            if header.deadline_at is not None:
                candidates.append(header.deadline_at)
            if header.status is _WAITING:
                candidates.extend(
                    t.wait_deadline_at
                    for t in header.tokens
                    if t.status is TokenStatus.WAITING and t.wait_deadline_at is not None
                )
            due_at = min((c for c in candidates if c <= now), default=None)
            if due_at is not None:
                out.append((due_at, header.id))
        out.sort()
        return [ident for _, ident in out[:limit]]

    async def stale(
        self, *, now: datetime, updated_before: datetime, limit: int
    ) -> builtins.list[str]:
        """Running executions whose lease expired (or, unleased, not updated lately)."""
        out = []
        for row in self._rows.values():
            header = row.execution
            if header.status is not _RUNNING:
                continue
            if row.lease_owner is not None:
                if row.lease_expires is not None and row.lease_expires <= now:
                    out.append((header.updated_at, header.id))
            elif header.updated_at < updated_before:
                out.append((header.updated_at, header.id))
        out.sort()
        return [ident for _, ident in out[:limit]]

    # -- retention ----------------------------------------------------------------------

    async def purge(self, query: PurgeQuery) -> PurgeBatch:
        """Delete one batch of old finished executions (see ``Store.purge``)."""
        return memory_purge.purge(self._rows, self._tokens, self._tasks, self._idem, query)

    # -- events, tokens, tasks ----------------------------------------------------------

    async def append_event(
        self, execution_id: str, type: str, data: dict[str, Any], *, at: datetime, now: datetime
    ) -> Event | None:
        """Append one event unless a live lease is held (see ``Store.append_event``)."""
        row = self._rows.get(execution_id)
        if row is None:
            raise errors.ExecutionNotFound(execution_id)
        header = row.execution
        if not header.status.is_terminal and row.lease_owner is not None:
            if row.lease_expires is None or row.lease_expires > now:
                return None
            row.lease_token += 1  # fence the stalled holder
        data = orjson.loads(orjson.dumps(data))
        header.event_seq += 1
        row.events.append((type, at, data, header.event_seq, header.tenant_id))
        return Event(type, execution_id, at, data, header.event_seq, header.tenant_id)

    async def events(self, execution_id: str, *, after: int = 0) -> builtins.list[Event]:
        """Persisted events after ``after``."""
        row = self._rows.get(execution_id)
        if row is None:
            return []
        return [Event(t, execution_id, at, data, seq, tenant) for t, at, data, seq, tenant in
                row.events if seq > after]  # fmt: skip

    async def get_resume_token(self, token_hash: str) -> ResumeTokenRecord | None:
        """Look up a token by hash."""
        record = self._tokens.get(token_hash)
        return replace(record) if record is not None else None

    async def get_task(self, task_id: str) -> Task | None:
        """One task."""
        task = self._tasks.get(task_id)
        return replace(task, metadata=dict(task.metadata)) if task is not None else None

    async def list_tasks(self, query: TaskQuery) -> builtins.list[Task]:
        """Tasks matching the query, oldest (or newest) first."""
        out = []
        for task in self._tasks.values():
            if query.status is not None and task.status != query.status:
                continue
            if query.assignee is not None and task.assignee != query.assignee:
                continue
            if query.role is not None and task.role != query.role:
                continue
            if query.tenant_id is not None and task.tenant_id != query.tenant_id:
                continue
            if query.execution_id is not None and task.execution_id != query.execution_id:
                continue
            if query.after is not None and (
                (task.created_at, task.id) >= query.after
                if query.newest_first
                else (task.created_at, task.id) <= query.after
            ):
                continue
            out.append(task)
        out.sort(key=lambda t: (t.created_at, t.id), reverse=query.newest_first)
        return [replace(t, metadata=dict(t.metadata)) for t in out[: query.limit]]

    # -- flows --------------------------------------------------------------------------

    async def save_flow(self, definition: dict[str, Any], *, now: datetime) -> bool:
        """Store one immutable flow version."""
        flow_id, version = str(definition.get("id")), str(definition.get("version"))
        frozen = orjson.loads(orjson.dumps(definition))
        existing = self._flows.get((flow_id, version))
        if existing is not None:
            if existing.definition == frozen:
                return False
            raise errors.FlowValidationError(
                flow_id,
                [
                    errors.ValidationIssue(
                        "version",
                        f"version {version} of flow {flow_id} is already stored with a different "
                        "definition; versions are immutable, publish a new version",
                    )
                ],
            )
        self._flows[(flow_id, version)] = StoredFlow(
            flow_id=flow_id, version=version, definition=frozen, created_at=now
        )
        return True

    async def get_flow(self, flow_id: str, version: str | None = None) -> StoredFlow | None:
        """One version, or the latest by semver."""
        if version is not None:
            return self._flows.get((flow_id, version))
        versions = [v for (f, v) in self._flows if f == flow_id]
        if not versions:
            return None
        return self._flows[(flow_id, max(versions, key=semver_key))]

    async def list_flows(self) -> builtins.list[StoredFlow]:
        """Latest version of each flow, by id."""
        out = []
        for flow_id in sorted({f for f, _ in self._flows}):
            latest = await self.get_flow(flow_id)
            assert latest is not None
            out.append(latest)
        return out

    async def flow_versions(self, flow_id: str) -> builtins.list[str]:
        """Versions newest first."""
        return sorted((v for f, v in self._flows if f == flow_id), key=semver_key, reverse=True)

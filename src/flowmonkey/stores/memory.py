"""``MemoryStore``: the in-process store for tests and simulation.

It passes the same contract suite as the durable stores. Context values are kept as
JSON bytes per top-level key (what the engine hands over in a ``StepCommit``), so a
commit costs what the step changed and nobody can mutate stored state by reference.
"""

from __future__ import annotations

import builtins
import heapq
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

import orjson

from flowmonkey import errors
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus, StepRecord, Token
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
)
from flowmonkey.stores.cursors import decode_cursor, encode_cursor
from flowmonkey.stores.documents import MemoryDocuments
from flowmonkey.stores.keys import MemoryKeys
from flowmonkey.stores.memory_index import ATTRS, Indexes, Probe, SortedKeys
from flowmonkey.stores.memory_periodic import MemoryPeriodic
from flowmonkey.stores.memory_records import MemoryRecords
from flowmonkey.stores.schedules import MemorySchedules
from flowmonkey.stores.tables import MemoryTables

__all__ = ["MemoryStore"]

_RUNNING = ExecutionStatus.RUNNING
_PENDING = ExecutionStatus.PENDING


class _Row:
    """One stored execution: header, context bytes per key, history, events, lease."""

    __slots__ = (
        "context",
        "events",
        "execution",
        "history",
        "keys",
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
        self.keys: tuple[Any, ...] = ()
        """The row's keys in the store's indexes (``memory_index.Indexes``)."""


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


class MemoryStore(
    MemoryPeriodic, MemoryRecords, MemoryKeys, MemorySchedules, MemoryDocuments, MemoryTables
):
    """In-memory ``Store``. Single event loop; every method is atomic by construction."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._idem: dict[tuple[str, str, str], str] = {}
        self._tokens: dict[str, ResumeTokenRecord] = {}
        self._tasks: dict[str, Task] = {}
        self._flows: dict[tuple[str, str], StoredFlow] = {}
        self._api_keys: dict[str, ApiKey] = {}
        self._documents = {}
        self._submissions = {}
        self._tables: dict[str, TableDef] = {}
        self._table_rows: dict[str, list[TableRow]] = {}
        self._row_seq = 0
        self._index = Indexes()
        self._init_schedules(self._index.probe)

    async def initialize(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close; data stays until the object is dropped."""

    def clear(self) -> None:
        """Drop everything (test helper)."""
        self.__init__()  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def probe(self) -> Probe:
        """Index keys walked by the store's queries so far (for tests: a periodic query
        over many parked executions with nothing due walks a handful, not all of them)."""
        return self._index.probe

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
        self._index.add(row)
        # The caller built ``execution`` and the row holds its own copies, so handing the
        # object back shares nothing mutable with the store.
        return execution, True

    async def get(self, execution_id: str, *, history: bool = True) -> Execution | None:
        """Return a copy of the execution, or ``None``."""
        row = self._rows.get(execution_id)
        return self._load(row, history=history) if row is not None else None

    async def list(self, query: ExecutionQuery) -> Page[Execution]:
        """Filter, newest first, cursor-paginated: walks the smallest index that the
        filters allow (one attribute's, or the wanted statuses' merged), newest first."""
        index = self._index
        sources: builtins.list[builtins.list[SortedKeys]] = [[index.order]]
        for attr in ATTRS:
            value = getattr(query, attr)
            if value is not None:
                found = index.by_attr[attr].get(value)
                sources.append([found] if found is not None else [])
        wanted = set(query.status) if query.status else None
        if wanted is not None:
            sources.append([index.by_status[s] for s in wanted])
        chosen = min(sources, key=lambda keys: sum(len(k) for k in keys))
        before: tuple[Any, ...] | None = None
        if query.cursor:
            before = decode_cursor(query.cursor)
        if query.created_before is not None and (
            before is None or before[0] >= query.created_before
        ):
            before = (query.created_before, "")
        walks = [keys.descending(before) for keys in chosen]
        walk = walks[0] if len(walks) == 1 else heapq.merge(*walks, reverse=True)
        rows = self._rows
        page: builtins.list[Execution] = []
        more = False
        for created_at, ident in walk:
            if query.created_after is not None and created_at < query.created_after:
                break
            header = rows[ident].execution
            if wanted is not None and header.status not in wanted:
                continue
            if any(
                (value := getattr(query, attr)) is not None and getattr(header, attr) != value
                for attr in ATTRS
            ):
                continue
            if len(page) == query.limit:
                more = True
                break
            page.append(header)
        next_cursor = None
        if more and page:
            next_cursor = encode_cursor(page[-1].created_at, page[-1].id)
        items = [self._load(rows[e.id], history=False) for e in page]
        return Page(items=items, next_cursor=next_cursor)

    async def find_children(self, parent_execution_id: str) -> builtins.list[Execution]:
        """Direct children, oldest first."""
        found = self._index.by_attr["parent_execution_id"].get(parent_execution_id)
        if found is None:
            return []
        return [self._load(self._rows[ident], history=False) for _, ident in found.ascending()]

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
        self._index.update(row)
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
        index = self._index
        for token in commit.resume_tokens:
            self._tokens[token.token_hash] = replace(token)
            index.tokens_of.setdefault(token.execution_id, set()).add(token.token_hash)
        if commit.revoke_step_tokens or commit.revoke_resume_tokens:
            steps = None if commit.revoke_resume_tokens else set(commit.revoke_step_tokens)
            for token_hash in index.tokens_of.get(execution.id, ()):
                record = self._tokens[token_hash]
                if record.status == "active" and (steps is None or record.step_id in steps):
                    record.status = "revoked"
        for task in commit.tasks:
            self._tasks[task.id] = replace(task, metadata=dict(task.metadata))
            index.tasks_of.setdefault(task.execution_id, set()).add(task.id)
        if commit.table_rows:
            self._add_rows(commit.table_rows)
        if commit.cancel_pending_tasks:
            for task_id in index.tasks_of.get(execution.id, ()):
                task = self._tasks[task_id]
                if task.status == "pending":
                    task.status = "cancelled"
        if commit.release or execution.status.is_terminal:
            row.lease_owner = None
            row.lease_expires = None
        index.update(row)

    async def heartbeat(self, lease: Lease, *, now: datetime, lease_for: timedelta) -> Lease:
        """Extend the lease."""
        row = self._check(lease)
        row.lease_expires = now + lease_for
        self._index.update(row)
        return replace(lease, expires_at=row.lease_expires)

    async def release(self, lease: Lease) -> None:
        """Drop the lease if still held."""
        row = self._rows.get(lease.execution_id)
        if row is not None and row.lease_token == lease.token and row.lease_owner == lease.owner:
            row.lease_owner = None
            row.lease_expires = None
            self._index.update(row)

    async def save_checkpoint(self, lease: Lease, checkpoint: dict[str, Any] | None) -> None:
        """Store checkpoint data for the running step."""
        row = self._check(lease)
        row.execution.checkpoint = orjson.loads(orjson.dumps(checkpoint))

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
        rows = self._claimable(now)
        if flows is not None:
            keys = set(flows)
            rows = [r for r in rows if (r.execution.flow_id, r.execution.flow_version) in keys]
        rows.sort(key=lambda r: (r.execution.created_at, r.execution.id))
        return [self._grant(r, owner, now, lease_for) for r in rows[:limit]]

    # -- retention ----------------------------------------------------------------------

    async def purge(self, query: PurgeQuery) -> PurgeBatch:
        """Delete one batch of old finished executions (see ``Store.purge``)."""
        return memory_purge.purge(
            self._rows, self._tokens, self._tasks, self._idem, self._index, query
        )

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

"""``Run``: the working state of one execution while this process holds its lease.

A ``Run`` buffers what the current step changes (context keys, history, events, resume
tokens, tasks) and writes it in one ``store.commit``. Nothing is visible before that
commit; a ``LeaseLost`` discards the buffer.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import secrets
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.engine.eager import run_eagerly
from flowmonkey.engine.limits import ContextSizes, dump_value, plan_write
from flowmonkey.engine.recording import CommitFailed, StepCancelled
from flowmonkey.model.events import Event
from flowmonkey.model.execution import (
    ErrorInfo,
    Execution,
    ExecutionStatus,
    StepRecord,
    Token,
    TokenStatus,
)
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.stores.base import Lease, StepCommit

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.model.flow import Flow, Step
    from flowmonkey.model.tables import TableRow

__all__ = ["BRANCH", "Run", "StepRuntime", "hash_token"]

BRANCH: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "flowmonkey_branch", default=None
)
"""Identity of the parallel branch running in this context (None outside branches).

A branch starts eagerly in the supervisor's task and may finish in a task of its own,
so "the current task" does not identify it; its context does (see ``run_branches``)."""


_MISSING: Any = object()


def _me() -> object | None:
    return BRANCH.get() or asyncio.current_task()


_WAITING = TokenStatus.WAITING
_ACTIVE = TokenStatus.ACTIVE
_DONE = TokenStatus.DONE


def hash_token(token: str) -> str:
    """Resume tokens are stored as their SHA-256 only."""
    return hashlib.sha256(token.encode()).hexdigest()


class Run:
    """One leased execution being driven by this engine (also the handlers' runtime)."""

    __slots__ = (
        "_sizes",
        "branches_started",
        "cancel_requested",
        "cancel_tasks",
        "commit_lock",
        "concurrent",
        "context_delete",
        "context_view",
        "dirty",
        "engine",
        "events",
        "execution",
        "failed_commit",
        "flow",
        "flow_known",
        "handler_tasks",
        "history",
        "join_waits",
        "lease",
        "lease_lost",
        "lock_holder",
        "new_tokens",
        "pipe_scope",
        "pipe_started",
        "released",
        "revoke_steps",
        "revoke_tokens",
        "supervisor",
        "table_rows",
        "tasks",
        "token_tasks",
        "touched",
        "use_token",
    )

    def __init__(self, engine: Runtime, execution: Execution, lease: Lease, flow: Flow) -> None:
        self.engine = engine
        self.execution = execution
        self.lease = lease
        self.flow = flow
        self.flow_known = True
        """False when this process lacks the flow (``flow`` is an empty placeholder): only
        operations that run no step (cancel, fail, resume/signal handed to a worker, due
        timers) may use such a run; they read the waiting step from its token."""
        self.context_view = MappingProxyType(execution.context)
        """Read-only view of the context for handlers (the dict itself never changes)."""
        self._sizes: ContextSizes | None = None
        self.dirty: dict[str, bytes] = {}
        self.context_delete: list[str] = []
        self.events: list[Event] = []
        self.history: list[StepRecord] = []
        self.new_tokens: list[ResumeTokenRecord] = []
        self.tasks: list[Task] = []
        self.table_rows: list[TableRow] = []
        """Rows of the pipes of the step being applied (written with its commit)."""
        self.pipe_scope: dict[str, Any] | None = None
        """The fixed part of the ``execution`` a pipe map sees (``engine/pipes.py``)."""
        self.pipe_started: datetime | None = None
        """The ``started_at`` that ``pipe_scope`` was built with."""
        self.use_token: str | None = None
        self.revoke_tokens = False
        self.revoke_steps: list[str] = []
        """Steps whose wait ended in this commit: their resume tokens are revoked."""
        self.cancel_tasks = False
        self.handler_tasks: set[asyncio.Task[Any]] = set()
        """Tasks currently awaiting a suspended handler (cancelled on cancel/lease loss)."""
        self.token_tasks: dict[str, asyncio.Task[Any]] = {}
        """Branch tasks by token id while parallel branches run."""
        self.concurrent = False
        """Set once branches run concurrently: commits then serialise and snapshot."""
        self.commit_lock: asyncio.Lock | None = None
        self.lock_holder: object | None = None
        self.touched: list[Token] | None = None
        self.supervisor: asyncio.Task[Any] | None = None
        self.branches_started: set[asyncio.Task[Any]] = set()
        """The task running ``run_branches`` (branches start eagerly inside it)."""
        self.join_waits: dict[str, int] = {}
        """Fork id -> branches not yet at their join (a cache over the tokens)."""
        """Set when only these tokens changed since the last commit (a branch step)."""
        self.cancel_requested = False
        self.lease_lost = False
        self.released = False
        self.failed_commit: CommitFailed | None = None
        """Set when a step's commit failed because of its values: the working copy then
        holds changes the store never got, so no other branch may commit until the
        driver has reloaded it and recorded the failure."""

    # -- buffered changes ------------------------------------------------------------

    def emit(self, type: str, at: datetime, data: dict[str, Any]) -> Event:
        """Append an event with the next sequence number (committed with the step)."""
        execution = self.execution
        execution.event_seq += 1
        data["execution_id"] = execution.id
        event = Event(type, execution.id, at, data, execution.event_seq, execution.tenant_id)
        self.events.append(event)
        return event

    def write(self, path: str, value: Any, *, literal: bool = False) -> None:
        """Set ``value`` at dot ``path`` of the context, with limit checks.

        Raises:
            OutputError, ContextLimitError: nothing was written.
        """
        context = self.execution.context
        if self._sizes is None:
            self._sizes = ContextSizes(context)
        top, new_top, encoded = plan_write(
            context,
            path,
            value,
            self.engine.options.context_limits,
            self._sizes,
            literal=literal,
        )
        context[top] = new_top
        self._sizes.update(top, len(encoded))
        self.dirty[top] = encoded

    async def commit(self, *, release: bool = False, at: datetime | None = None) -> None:
        """Write the buffered changes in one transaction (fenced by the lease).

        Raises:
            LeaseLost: another process took the execution over; the buffer is dropped.
        """
        if not self.concurrent:
            await self._commit(release=release, at=at)
        elif self.lock_holder is _me():
            # Inside ``applying()``: this branch already holds the lock. A cancellation
            # (a sibling ended the run, an ``any`` join dropped this branch) must not cut
            # a commit that is under way.
            await run_eagerly(self._commit(release=release, at=at))
        else:
            async with self.applying():
                await run_eagerly(self._commit(release=release, at=at))

    def applying(self) -> _Applying:
        """Hold the run's lock while one branch applies its step and commits it, so each
        branch step is its own commit (no-op while the run is linear). Use with
        ``async with``."""
        return _Applying(self)

    async def _commit(self, *, release: bool, at: datetime | None) -> None:
        if self.released:
            return
        if self.failed_commit is not None:
            raise StepCancelled()  # a sibling branch's commit failed: see failed_commit
        execution = self.execution
        execution.updated_at = at if at is not None else self.engine.clock.now()
        _sync_position(execution)
        release = release or execution.status.is_terminal
        commit = StepCommit(
            # Stores read the header before their first await (see ``StepCommit``), so the
            # working copy itself is passed, concurrent branches or not.
            execution=execution,
            changed_tokens=self.touched,
            context_set=self.dirty,
            context_delete=self.context_delete,
            history=self.history if self.engine.options.record_history else (),
            events=self.events,
            resume_tokens=self.new_tokens,
            use_resume_token=self.use_token,
            revoke_resume_tokens=self.revoke_tokens,
            revoke_step_tokens=self.revoke_steps,
            tasks=self.tasks,
            cancel_pending_tasks=self.cancel_tasks,
            release=release,
            table_rows=self.table_rows,
        )
        self.touched = None
        events = self.events
        history = self.history
        # Swap the buffers before awaiting the store: other branches may buffer more.
        # Empty ones are kept (stores copy what they keep): fewer allocations per step.
        if self.dirty:
            self.dirty = {}
        if self.context_delete:
            self.context_delete = []
        self.events = []
        if history:
            self.history = []
        if self.new_tokens:
            self.new_tokens = []
        if self.tasks:
            self.tasks = []
        if self.table_rows:
            self.table_rows = []
        self.use_token = None
        self.revoke_tokens = False
        if self.revoke_steps:
            self.revoke_steps = []
        self.cancel_tasks = False
        try:
            if self.concurrent:
                # Branches keep changing the working copy while others commit, so a
                # branch commit must reach the store now, not in the next group.
                await self.engine.store.commit(self.lease, commit)
            else:
                await self.engine.committer.commit(self.lease, commit)
        except errors.LeaseLost:
            self.lease_lost = True
            raise
        if history and self.engine.options.record_history:
            execution.history.extend(history)
        if release:
            self.released = True
        self.engine.bus.emit(events)

    async def heartbeat(self) -> None:
        """Extend the lease."""
        engine = self.engine
        self.lease = await engine.store.heartbeat(
            self.lease, now=engine.clock.now(), lease_for=engine.options.lease_for
        )

    def cancel_handlers(self) -> None:
        """Cancel every handler task this run is awaiting."""
        self.cancel_requested = True
        for task in tuple(self.handler_tasks):
            task.cancel()

    def reload(self, stored: Execution) -> None:
        """Start over from ``stored`` (the execution as last committed), dropping every
        buffered change. The working copy keeps its identity (the driver and the
        handlers' context view hold it)."""
        execution = self.execution
        context = execution.context
        for name in _EXECUTION_FIELDS:
            setattr(execution, name, getattr(stored, name))
        context.clear()
        context.update(stored.context)
        execution.context = context
        self._sizes = None
        self.dirty = {}
        self.context_delete = []
        self.events = []
        self.history = []
        self.new_tokens = []
        self.tasks = []
        self.table_rows = []
        self.use_token = None
        self.revoke_tokens = False
        self.revoke_steps = []
        self.cancel_tasks = False
        self.touched = None
        self.join_waits = {}
        self.concurrent = False
        self.failed_commit = None

    # -- position helpers --------------------------------------------------------------

    def active_token(self) -> Token | None:
        """The first active token (a linear flow has at most one)."""
        for token in self.execution.tokens:
            if token.status is _ACTIVE:
                return token
        return None

    def waiting_step(self, token: Token) -> Step | None:
        """The step ``token`` is at: from the flow, else (when this process lacks the flow)
        from what its wait recorded (``Token.wait_step``)."""
        step_id = token.step_id
        if step_id is None:
            return None
        step = self.flow.steps.get(step_id)
        if step is None and not self.flow_known and token.wait_step is not None:
            from flowmonkey.model.flow import Step

            step = Step.from_dict({**token.wait_step, "id": step_id})
        return step

    def has_step(self, step_id: str) -> bool:
        """True when ``step_id`` may be moved to: a step of the flow, or any id when this
        process lacks the flow (validation checked every target when it was saved)."""
        return not self.flow_known or step_id in self.flow.steps

    def finish(self, status: ExecutionStatus, at: datetime, error: ErrorInfo | None) -> None:
        """Make the execution terminal: tokens done, resume tokens revoked, tasks cancelled."""
        self.touched = None
        execution = self.execution
        execution.status = status
        execution.finished_at = at
        execution.error = error
        execution.wake_at = None
        execution.wait_reason = None
        execution.checkpoint = None
        for token in execution.tokens:
            if token.status is not _DONE:
                token.status = _DONE
                token.wake_at = None
                token.wait_reason = None
                token.wait_kind = None
                token.wait_deadline_at = None
                token.wait_step = None
        self.revoke_tokens = True
        self.cancel_tasks = True


_EXECUTION_FIELDS = tuple(Execution.__slots__)


def _sync_position(execution: Execution) -> None:
    """Derive ``current_step_id``, ``wake_at`` and ``wait_reason`` from the tokens."""
    tokens = execution.tokens
    if len(tokens) == 1:
        token = tokens[0]
        if token.status is not _DONE:
            execution.current_step_id = token.step_id
        if token.status is _WAITING:
            execution.wake_at = token.wake_at
            execution.wait_reason = token.wait_reason
        else:
            execution.wake_at = None
            execution.wait_reason = None
        return
    for t in tokens:  # the first live token: usually at the front
        if t.status is not _DONE:
            execution.current_step_id = t.step_id
            break
    if execution.status is not ExecutionStatus.WAITING:
        # Only a parked execution has a wake time or a reason; skipping the scan keeps
        # the commits of a wide fork from costing O(branches) each.
        execution.wake_at = None
        execution.wait_reason = None
        return
    wake_at = reason = None
    for t in tokens:
        if t.status is _WAITING:
            if reason is None and t.wait_kind != "join":
                reason = t.wait_reason
            at = t.wake_at
            if at is not None and (wake_at is None or at < wake_at):
                wake_at = at
    execution.wake_at = wake_at
    execution.wait_reason = reason


class _Applying:
    """``async with run.applying()``: a hand-written context manager, because a
    generator-based one costs a measurable share of a branch step."""

    __slots__ = ("held", "run")

    def __init__(self, run: Run) -> None:
        self.run = run
        self.held = False

    async def __aenter__(self) -> None:
        run = self.run
        me = _me()
        if not run.concurrent or run.lock_holder is me:
            return
        if run.commit_lock is None:
            run.commit_lock = asyncio.Lock()
        await run.commit_lock.acquire()
        run.lock_holder = me
        self.held = True

    async def __aexit__(self, *exc: object) -> None:
        if self.held:
            run = self.run
            run.lock_holder = None
            assert run.commit_lock is not None
            run.commit_lock.release()


class StepRuntime:
    """What a ``HandlerContext`` delegates to: one step of one token of a ``Run``."""

    __slots__ = ("_undo", "run", "step", "token")

    def __init__(self, run: Run, step: Step, token: Token) -> None:
        self.run = run
        self.step = step
        self.token = token
        self._undo: dict[str, Any] = {}

    def set_context(self, key: str, value: Any) -> None:
        """``ctx.set``: a top-level write with limit checks (undone if the attempt fails)."""
        context = self.run.execution.context
        if key not in self._undo:
            self._undo[key] = context.get(key, _MISSING)
        self.run.write(key, value, literal=True)

    def undo(self) -> None:
        """Put back what this attempt's ``ctx.set`` calls changed."""
        run = self.run
        context = run.execution.context
        for key, old in self._undo.items():
            if old is _MISSING:
                context.pop(key, None)
                run.dirty.pop(key, None)
                if run._sizes is not None:
                    run._sizes.remove(key)
            else:
                run.write(key, old, literal=True)
        self._undo.clear()

    def snapshot(self) -> Execution:
        """A copy of the execution for ``ctx.execution``."""
        return self.run.execution.clone()

    async def save_checkpoint(self, data: Any) -> None:
        """Persist checkpoint data for the running step now."""
        run = self.run
        try:
            dump_value(data, what="checkpoint data")
        except ValueError as exc:  # not JSON, or NaN/Infinity (it would come back as null)
            raise errors.InvalidValue(str(exc)) from None
        checkpoint = {"step_id": self.step.id, "data": data}
        await run.engine.store.save_checkpoint(run.lease, checkpoint)
        run.execution.checkpoint = checkpoint

    def get_checkpoint(self) -> Any:
        """Checkpoint data of the running step, if any."""
        checkpoint = self.run.execution.checkpoint
        if checkpoint and checkpoint.get("step_id") == self.step.id:
            return checkpoint.get("data")
        return None

    async def heartbeat(self, progress: float | None, message: str | None) -> None:
        """Extend the lease now (long handlers call this through ``ctx.heartbeat``)."""
        await self.run.heartbeat()

    @property
    def services(self) -> Any:
        """The engine's ``StandardServices``."""
        return self.run.engine.services

    def create_resume_token(self, expires_in: timedelta) -> str:
        """A 256-bit random token; only its hash is stored, with this step's commit."""
        run = self.run
        token = secrets.token_urlsafe(32)
        now = run.engine.clock.now()
        run.new_tokens.append(
            ResumeTokenRecord(
                token_hash=hash_token(token),
                execution_id=run.execution.id,
                step_id=self.step.id,
                created_at=now,
                expires_at=now + expires_in,
            )
        )
        return token

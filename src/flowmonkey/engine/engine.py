"""``Engine``: the public API. It holds no execution state; every call loads from the store."""

from __future__ import annotations

import asyncio
import builtins
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flowmonkey.clock import Clock, SystemClock
from flowmonkey.engine import control, driving, lookup, retention, terminal, timers
from flowmonkey.engine.bus import EventBus, Listener
from flowmonkey.engine.commits import CommitBatcher
from flowmonkey.engine.creation import create_execution
from flowmonkey.engine.heartbeats import LeaseKeeper
from flowmonkey.engine.options import EngineOptions
from flowmonkey.engine.results import (
    CancelResult,
    CreateResult,
    RunResult,
    SimulationResult,
    StepResult,
)
from flowmonkey.engine.run import Run
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.flow import Flow, Step
from flowmonkey.model.records import Task
from flowmonkey.stores.base import Acquired, ExecutionQuery, Page, Store, TaskQuery

if TYPE_CHECKING:
    from flowmonkey.definitions.registry import FlowRegistry
    from flowmonkey.handlers.registry import HandlerRegistry, RegisteredHandler
    from flowmonkey.model.result import Result

__all__ = ["Engine"]

log = logging.getLogger("flowmonkey.engine")
Hook = Callable[[Execution], Any]


class Engine:
    """Creates and drives executions of registered flows over a ``Store``.

    Use it as an async context manager (``async with Engine(...) as engine``) so the
    store is opened/migrated, stale runs are recovered, and everything is closed after.
    """

    def __init__(
        self,
        store: Store,
        handlers: HandlerRegistry | None = None,
        flows: FlowRegistry | None = None,
        *,
        options: EngineOptions | None = None,
        clock: Clock | None = None,
    ) -> None:
        from flowmonkey.definitions.registry import FlowRegistry
        from flowmonkey.handlers.registry import HandlerRegistry

        self.store = store
        self.handlers = handlers if handlers is not None else HandlerRegistry()
        self.flows = flows if flows is not None else FlowRegistry()
        self.options = options if options is not None else EngineOptions()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.purge_stats = retention.PurgeStats()
        """Totals of this engine's purges (executions, rows, batches, passes)."""
        self.bus = EventBus()
        self.owner = f"engine-{uuid.uuid4().hex[:12]}"
        """Lease owner prefix of this engine (a worker sets its own worker id)."""
        self._acquisitions = 0
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: dict[str, Run] = {}
        self.committer = CommitBatcher(store, busy=lambda: len(self._inflight) > 1)
        """Groups the step commits of concurrent executions (see ``commits.py``)."""
        self._leases = LeaseKeeper(self)
        self._hooks: dict[str, dict[str, list[Hook]]] = {}
        self._ready = False
        self._builtins: dict[str, RegisteredHandler] = {}
        self.wake_signaler: Any = None
        """Optional ``WakeSignaler``: told when an execution becomes runnable."""
        self.flows.on_register.append(self._flow_registered)
        self.handlers.on_register.append(self._handler_registered)
        from flowmonkey.engine.builtins import builtin_handlers

        for builtin in builtin_handlers(self):
            self.register_builtin(builtin)

    def _flow_registered(self, flow: Flow) -> None:
        data = {"flow_id": flow.id, "version": flow.version}
        self.bus.emit([Event("flow.registered", None, self.clock.now(), data)])

    def _handler_registered(self, handler: Any) -> None:
        data = {"handler_type": getattr(handler, "type", str(handler))}
        self.bus.emit([Event("handler.registered", None, self.clock.now(), data)])

    # -- lifecycle -----------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open/migrate the store and, with ``automatic_recovery``, recover stale runs."""
        if self._ready:
            return
        await self.store.initialize()
        self._ready = True
        if self.options.load_flows_from_store:
            await self.load_flows_from_store()
        if self.options.automatic_recovery:
            await self.recover_stale()

    async def close(self) -> None:
        """Stop background work, wait for async listeners, close the store."""
        await self._leases.stop()
        await self.bus.drain()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        await self.store.close()
        self._ready = False

    async def __aenter__(self) -> Engine:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ensure_ready(self) -> None:
        if not self._ready:
            await self.initialize()

    @property
    def sync_pool(self) -> ThreadPoolExecutor:
        """The bounded thread pool that runs sync handlers."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.options.sync_handler_threads, thread_name_prefix="flowmonkey"
            )
        return self._pool

    # -- registration and events ---------------------------------------------------------

    def on(self, event_type: str, listener: Listener) -> Callable[[], None]:
        """Listen to events (``"*"`` for all, ``"error"`` for hook errors)."""
        return self.bus.on(event_type, listener)

    def add_hooks(
        self,
        flow_id: str,
        *,
        on_complete: Hook | None = None,
        on_fail: Hook | None = None,
        on_cancel: Hook | None = None,
    ) -> None:
        """Call these (sync or async) with the final Execution after its terminal commit."""
        hooks = self._hooks.setdefault(flow_id, {})
        for name, fn in (
            ("on_complete", on_complete),
            ("on_fail", on_fail),
            ("on_cancel", on_cancel),
        ):
            if fn is not None:
                hooks.setdefault(name, []).append(fn)

    async def after_terminal(self, execution: Execution) -> None:
        """Wake a waiting parent, then run lifecycle hooks (errors are reported to the log
        and ``"error"`` listeners, never raised)."""
        if execution.parent_execution_id is not None and execution.parent_step_id is not None:
            try:
                await timers.wake_parent(
                    self,
                    execution.parent_execution_id,
                    execution.parent_step_id,
                    int(execution.metadata.get("parent_visit", 0)),
                )
            except Exception:
                log.exception("waking the parent of %s failed; its poll will notice", execution.id)
        await terminal.after_terminal(self, execution)

    def register_builtin(self, handler: RegisteredHandler) -> None:
        """Register an engine-provided step type (parallel, switch, ...)."""
        self._builtins[handler.type] = handler

    def resolve_handler(self, step: Step) -> RegisteredHandler | None:
        """The handler for a step: user handlers first, then built-in step types.

        In simulation mode every non-built-in type gets a passthrough handler.
        """
        return lookup.resolve_handler(self, step)

    def wait_timeout_for(self, execution: Execution, step: Step) -> timedelta | None:
        """How long a wait at ``step`` may last before ``onTimeout``/``TIMEOUT``.

        A user task's ``dueIn`` and a signal wait's ``timeout`` win; otherwise the
        execution's ``wait_timeout``, else the engine default.
        """
        from flowmonkey.durations import parse_duration

        own = None
        if step.type == "userTask":
            own = step.config.get("dueIn")
        elif step.type == "waitForSignal":
            own = step.config.get("timeout")
        if own is not None:
            return parse_duration(own)
        if execution.wait_timeout is not None:
            return execution.wait_timeout
        return self.options.wait_timeout

    async def check_children(self, parent_id: str, step_id: str, visit: int) -> bool:
        """Wake a parent waiting at ``step_id`` once every child of that visit ended.

        Safe to call any number of times: only a token still waiting for children at
        that step and visit is woken.
        """
        await timers.wake_parent(self, parent_id, step_id, visit)
        return True

    # -- flows -----------------------------------------------------------------------------

    async def get_flow(self, flow_id: str, version: str | None = None) -> Flow:
        """A registered flow, else one saved in the store (then cached in the registry)."""
        return await lookup.get_flow(self, flow_id, version)

    async def load_flows_from_store(self) -> int:
        """Register every version of every flow saved in the store; returns the count."""
        return await lookup.load_flows_from_store(self)

    async def save_flow(self, flow: Flow) -> bool:
        """Persist ``flow`` in the store, then register it (versions are immutable).

        The store decides first: a version it refuses (a different definition under the
        same id@version) must not end up registered in this process either.
        """
        await self._ensure_ready()
        return await lookup.save_flow(self, flow)

    # -- create / run ----------------------------------------------------------------------

    async def create(
        self,
        flow_id: str,
        context: Mapping[str, Any] | None = None,
        *,
        tenant_id: str | None = None,
        idempotency_key: str | None = None,
        idempotency_ttl: timedelta | None = None,
        metadata: Mapping[str, Any] | None = None,
        parent_execution_id: str | None = None,
        parent_step_id: str | None = None,
        correlation_id: str | None = None,
        user_id: str | None = None,
        version: str | None = None,
        execution_timeout: timedelta | None = None,
        wait_timeout: timedelta | None = None,
        execution_id: str | None = None,
    ) -> CreateResult:
        """Create a ``pending`` execution of the flow's latest (or given) version.

        Raises:
            FlowNotFound: unknown flow or version (nothing is created).
            ContextLimitError: the initial context breaks a limit (nothing is created).
        """
        created, _ = await create_execution(
            self, flow_id, context, tenant_id=tenant_id, idempotency_key=idempotency_key,
            idempotency_ttl=idempotency_ttl, metadata=metadata,
            parent_execution_id=parent_execution_id, parent_step_id=parent_step_id,
            correlation_id=correlation_id, user_id=user_id, version=version,
            execution_timeout=execution_timeout, wait_timeout=wait_timeout,
            execution_id=execution_id, lease_self=False,
        )  # fmt: skip
        return created

    async def start(
        self, flow_id: str, context: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> RunResult:
        """``create`` then ``run``. On an idempotency hit the existing execution is run if it
        is still ``pending``, else reported as it is (finished, waiting, or running
        elsewhere: a duplicate start never queues up behind the first one)."""
        created, run = await create_execution(self, flow_id, context, lease_self=True, **kwargs)
        if run is not None:
            return await self.drive(run)
        existing = created.execution
        if existing.status is not ExecutionStatus.PENDING:
            return RunResult.of(existing)
        return await self.run(existing.id)

    async def notify_runnable(self, execution_id: str) -> None:
        """Tell other processes (if a wake signaler is set) that work is ready."""
        if self.wake_signaler is not None:
            try:
                await self.wake_signaler.notify(execution_id)
            except Exception:
                log.warning("wake signal for %s failed; workers will poll", execution_id)

    async def acquire(
        self, execution_id: str, *, steal: bool = False, start: bool = True
    ) -> Acquired:
        """Lease an execution to this engine (``start=False`` leaves ``pending`` as is).

        Each acquisition gets its own owner id (``<engine owner>/<n>``): a store re-grants
        a live lease to the same owner, so a shared id would let two concurrent calls of
        this engine drive one execution at once.
        """
        await self._ensure_ready()
        inflight = self._inflight.get(execution_id)
        if inflight is not None and not steal:
            return Acquired(execution=inflight.execution.clone(), lease=None)
        return await self.store.acquire(
            execution_id,
            owner=self.lease_owner(),
            now=self.clock.now(),
            lease_for=self.options.lease_for,
            steal=steal,
            start=start,
        )

    def lease_owner(self) -> str:
        """A fresh lease owner id for one acquisition by this engine."""
        self._acquisitions += 1
        return f"{self.owner}/{self._acquisitions}"

    async def open_run(self, acquired: Acquired) -> Run | None:
        """Wrap a granted lease in a ``Run`` (None if no lease was granted)."""
        return await driving.open_run(self, acquired)

    async def run(self, execution_id: str) -> RunResult:
        """Drive the execution until it completes, fails, is cancelled or waits.

        Never sleeps until a wake time: a waiting execution returns at once.
        Raises ``ExecutionNotFound`` for an unknown id.
        """
        acquired = await self.acquire(execution_id)
        run = await self.open_run(acquired)
        if run is None:
            return RunResult.of(acquired.execution)
        return await self.drive(run)

    async def step(self, execution_id: str) -> StepResult:
        """Run exactly one step (after applying any due wake or timeout)."""
        return await driving.step_once(self, execution_id)

    async def drive(
        self,
        run: Run,
        *,
        max_steps: int | None = None,
        record: builtins.list[tuple[str | None, str | None, str | None]] | None = None,
        stop: asyncio.Event | None = None,
    ) -> RunResult:
        """Step a leased execution until it stops (or ``max_steps`` handler steps ran, or
        ``stop`` is set: then it is left ``pending`` for anyone to continue)."""
        return await driving.drive(self, run, max_steps=max_steps, record=record, stop=stop)

    async def run_until_idle(self, *, max_rounds: int = 10_000) -> int:
        """Run every runnable execution (children too) until none is runnable.

        Due timers are applied first on each round (by the clock). Returns the number of
        executions driven.
        """
        return await driving.run_until_idle(self, max_rounds=max_rounds)

    # -- waits, resume, signals (control.py); cancel, fail (terminal.py); timers ---------

    async def resume(
        self,
        execution_id: str,
        data: Any = None,
        *,
        token: str | None = None,
        run_next: bool = True,
    ) -> RunResult:
        """Resume a waiting execution with ``data`` (stored at ``context["resumeData"]``).

        The next steps run in this call; ``run_next=False`` commits the resume alone and
        leaves the execution ``pending`` for a worker (one transaction; the worker is
        woken by LISTEN/NOTIFY or Redis when configured).

        Raises:
            ExecutionNotFound, ExecutionNotWaiting, InvalidResumeToken,
            ResumeTokenExpired, ContextLimitError: nothing changed.
        """
        await self._ensure_ready()
        return await control.resume(self, execution_id, data, token=token, run_next=run_next)

    async def resume_by_token(
        self, token: str, data: Any = None, *, run_next: bool = True
    ) -> RunResult:
        """Resume whichever execution ``token`` belongs to (``run_next`` as ``resume``)."""
        await self._ensure_ready()
        return await control.resume_by_token(self, token, data, run_next=run_next)

    async def signal(
        self,
        execution_id: str,
        step_id: str,
        port: str | None = None,
        payload: Any = None,
        *,
        run_next: bool = True,
    ) -> RunResult:
        """Deliver a signal to the token waiting at ``step_id`` (``InvalidSignal`` if none).

        ``run_next=False`` leaves the next steps to a worker (see ``resume``).
        """
        await self._ensure_ready()
        return await control.signal(
            self, execution_id, step_id, port=port, payload=payload, run_next=run_next
        )

    async def complete_task(
        self,
        task_id: str,
        port: str | None = None,
        output: Any = None,
        user_id: str | None = None,
        *,
        run_next: bool = True,
    ) -> RunResult:
        """Complete a user task (validated against its form) and continue the execution
        (``run_next`` as ``resume``)."""
        await self._ensure_ready()
        return await control.complete_task(
            self, task_id, port=port, output=output, user_id=user_id, run_next=run_next
        )

    async def cancel(
        self, execution_id: str, source: str = "user", reason: str | None = None
    ) -> CancelResult:
        """Cancel atomically (children too). Terminal executions give ``cancelled=False``."""
        await self._ensure_ready()
        return await terminal.cancel(self, execution_id, source=source, reason=reason)

    async def fail(
        self,
        execution_id: str,
        message: str = "Failed manually",
        step_id: str | None = None,
        code: str = "MANUAL_FAILURE",
    ) -> RunResult:
        """Fail a non-terminal execution with this error (same clean-up as cancel)."""
        await self._ensure_ready()
        return await terminal.fail(self, execution_id, message=message, step_id=step_id, code=code)

    def request_cancel(self, execution_id: str) -> None:
        """Cancel the handler this engine is running for ``execution_id``, if any."""
        run = self._inflight.get(execution_id)
        if run is not None:
            run.cancel_handlers()

    async def tick_timers(self, *, limit: int = 1000) -> builtins.list[str]:
        """Apply every due wake, retry, wait timeout and execution timeout now.

        Woken executions become runnable (``pending``); no step runs here.
        """
        await self._ensure_ready()
        return await timers.tick_timers(self, limit=limit)

    async def recover_stale(self) -> builtins.list[str]:
        """Make ``running`` executions with expired leases runnable again
        (``run_number += 1``, ``execution.recovered``)."""
        return await timers.recover_stale(self)

    async def purge(
        self,
        *,
        older_than: timedelta | None = None,
        status: Iterable[ExecutionStatus | str] | None = None,
        flow_id: str | None = None,
        dry_run: bool = False,
        pause: float = 0.0,
        batch_size: int | None = None,
    ) -> retention.PurgeReport:
        """Purge finished executions in small batches (see docs/retention.md).

        With ``older_than``: those that finished longer ago than that (``status`` and
        ``flow_id`` narrow it). Without: the retention pass (``EngineOptions.retention``
        and each flow's ``retention``), which is what a worker runs periodically.
        """
        await self._ensure_ready()
        size = batch_size or self.options.purge_batch_size
        if older_than is None:
            return await retention.purge_expired(self, batch_size=size, pause=pause)
        return await retention.purge(
            self, older_than=older_than, status=status, flow_id=flow_id, dry_run=dry_run,
            batch_size=size, pause=pause,
        )  # fmt: skip

    # -- reads -------------------------------------------------------------------------------

    async def get(self, execution_id: str) -> Execution | None:
        """The execution as stored, or ``None``."""
        await self._ensure_ready()
        return await self.store.get(execution_id)

    async def list(
        self,
        *,
        status: ExecutionStatus | str | Iterable[ExecutionStatus | str] | None = None,
        flow_id: str | None = None,
        tenant_id: str | None = None,
        correlation_id: str | None = None,
        parent_execution_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Execution]:
        """A page of executions, newest first."""
        await self._ensure_ready()
        if status is None:
            statuses = None
        elif isinstance(status, str):
            statuses = [ExecutionStatus(status)]
        else:
            statuses = [ExecutionStatus(s) for s in status]
        return await self.store.list(
            ExecutionQuery(
                status=statuses,
                flow_id=flow_id,
                tenant_id=tenant_id,
                correlation_id=correlation_id,
                parent_execution_id=parent_execution_id,
                limit=limit,
                cursor=cursor,
            )
        )

    async def events(self, execution_id: str, *, after: int = 0) -> builtins.list[Event]:
        """The persisted event log of an execution, in order."""
        await self._ensure_ready()
        return await self.store.events(execution_id, after=after)

    async def tasks(
        self,
        *,
        assignee: str | None = None,
        role: str | None = None,
        status: str | None = "pending",
        tenant_id: str | None = None,
        execution_id: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Task]:
        """User tasks by assignee/role/status/tenant."""
        await self._ensure_ready()
        return await self.store.list_tasks(
            TaskQuery(
                assignee=assignee,
                role=role,
                status=status,
                tenant_id=tenant_id,
                execution_id=execution_id,
                limit=limit,
            )
        )

    async def simulate(
        self,
        flow_id: str,
        context: Mapping[str, Any] | None = None,
        *,
        outcomes: Mapping[str, Result | Callable[..., Any]] | None = None,
        signals: Mapping[str, Any] | None = None,
        version: str | None = None,
        max_steps: int = 1000,
    ) -> SimulationResult:
        """Dry-run a flow with passthrough handlers; nothing touches this engine's store."""
        from flowmonkey.engine.simulation import simulate

        return await simulate(
            self,
            flow_id,
            context,
            outcomes=outcomes,
            signals=signals,
            version=version,
            max_steps=max_steps,
        )

"""``Engine``: the public API, a thin facade over the operation modules.

It builds the ``Runtime`` they share and calls them; it holds no execution state (every
call loads from the store) and no logic of its own beyond readiness and registration.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from flowmonkey.clock import Clock, SystemClock
from flowmonkey.engine import (
    control,
    driving,
    leasing,
    lookup,
    retention,
    retrying,
    scheduling,
    simulation,
    terminal,
    timers,
)
from flowmonkey.engine.builtins import builtin_handlers
from flowmonkey.engine.bus import Listener
from flowmonkey.engine.creation import create_execution
from flowmonkey.engine.options import EngineOptions
from flowmonkey.engine.reads import ExecutionReads
from flowmonkey.engine.results import (
    CancelResult,
    CreateResult,
    RunResult,
    SimulationResult,
    StepResult,
)
from flowmonkey.engine.run import Run
from flowmonkey.engine.runtime import Hook, Runtime
from flowmonkey.engine.schedules_api import Schedules
from flowmonkey.engine.scheduling import FireReport
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.flow import Flow, Step
from flowmonkey.stores.base import Acquired, Store

if TYPE_CHECKING:
    from flowmonkey.definitions.registry import FlowRegistry
    from flowmonkey.handlers.registry import HandlerRegistry, RegisteredHandler
    from flowmonkey.model.result import Result

__all__ = ["Engine"]

_LATE_EVENT_GRACE = 2.0
"""Seconds ``close()`` waits for events still waiting on another run's lease."""


class Engine(ExecutionReads):
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

        self.runtime = Runtime(
            store,
            handlers if handlers is not None else HandlerRegistry(),
            flows if flows is not None else FlowRegistry(),
            options if options is not None else EngineOptions(),
            clock if clock is not None else SystemClock(),
        )
        """The state the operation modules share (see ``runtime.py``)."""
        self.runtime.after_terminal = partial(timers.after_terminal, self.runtime)
        self.purge_stats = retention.PurgeStats()
        """Totals of this engine's purges (executions, rows, batches, passes)."""
        self.flows.on_register.append(self._flow_registered)
        self.handlers.on_register.append(self._handler_registered)
        for builtin in builtin_handlers(self.runtime):
            self.register_builtin(builtin)

    def _flow_registered(self, flow: Flow) -> None:
        self.runtime.runnable = None
        data = {"flow_id": flow.id, "version": flow.version}
        self.bus.emit([Event("flow.registered", None, self.clock.now(), data)])

    def _handler_registered(self, handler: Any) -> None:
        self.runtime.runnable = None
        data = {"handler_type": getattr(handler, "type", str(handler))}
        self.bus.emit([Event("handler.registered", None, self.clock.now(), data)])

    # -- lifecycle -----------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open/migrate the store and, with ``automatic_recovery``, recover stale runs."""
        if self.runtime.ready:
            return
        await self.store.initialize()
        self.runtime.services.reopen()
        self.runtime.ready = True
        if self.options.load_flows_from_store:
            await self.load_flows_from_store()
        if self.options.automatic_recovery:
            await self.recover_stale()

    async def close(self) -> None:
        """Stop background work, wait for async listeners, close the store."""
        await self.runtime.leases.stop()
        await self.runtime.late_events.close(grace=_LATE_EVENT_GRACE)
        await self.bus.drain()
        self.runtime.close_pool()
        await self.runtime.services.aclose()
        await self.store.close()
        self.runtime.ready = False

    async def __aenter__(self) -> Engine:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ensure_ready(self) -> None:
        if not self.runtime.ready:
            await self.initialize()

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
        hooks = self.runtime.hooks.setdefault(flow_id, {})
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
        await timers.after_terminal(self.runtime, execution)

    def register_builtin(self, handler: RegisteredHandler) -> None:
        """Register an engine-provided step type (parallel, switch, ...)."""
        self.runtime.builtins[handler.type] = handler
        self.runtime.runnable = None

    def runnable_flows(self) -> frozenset[tuple[str, str]]:
        """``(flow_id, version)`` of every registered flow this engine has a handler for
        every step of: what a worker (and ``run_until_idle``) claims. Cached until a
        flow or handler is registered."""
        return lookup.runnable_flows(self.runtime)

    def resolve_handler(self, step: Step) -> RegisteredHandler | None:
        """The handler for a step: user handlers first, then built-in step types.

        In simulation mode every non-built-in type gets a passthrough handler.
        """
        return lookup.resolve_handler(self.runtime, step)

    def wait_timeout_for(self, execution: Execution, step: Step) -> timedelta | None:
        """How long a wait at ``step`` may last before ``onTimeout``/``TIMEOUT``.

        A user task's ``dueIn`` and a signal wait's ``timeout`` win; otherwise the
        execution's ``wait_timeout``, else the engine default.
        """
        return self.runtime.wait_timeout_for(execution, step)

    async def check_children(self, parent_id: str, step_id: str, visit: int) -> bool:
        """Wake a parent waiting at ``step_id`` once every child of that visit ended.

        Safe to call any number of times: only a token still waiting for children at
        that step and visit is woken.
        """
        await timers.wake_parent(self.runtime, parent_id, step_id, visit)
        return True

    # -- flows -----------------------------------------------------------------------------

    async def get_flow(self, flow_id: str, version: str | None = None) -> Flow:
        """A registered flow, else one saved in the store (then cached in the registry)."""
        return await lookup.get_flow(self.runtime, flow_id, version)

    async def load_flows_from_store(self, *, strict: bool = True) -> int:
        """Register every version of every flow saved in the store; returns the count.

        ``strict=False`` skips (and logs) a version that cannot be registered here.
        """
        return await lookup.load_flows_from_store(self.runtime, strict=strict)

    async def save_flow(self, flow: Flow) -> bool:
        """Persist ``flow`` in the store, then register it (versions are immutable).

        The store decides first: a version it refuses (a different definition under the
        same id@version) must not end up registered in this process either.
        """
        await self._ensure_ready()
        return await lookup.save_flow(self.runtime, flow)

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
            InvalidValue: a context value is not JSON or holds NaN/Infinity, or
                ``tenant_id`` is ``""`` (nothing is created).
        """
        await self._ensure_ready()
        created, _ = await create_execution(
            self.runtime, flow_id, context, tenant_id=tenant_id, idempotency_key=idempotency_key,
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
        await self._ensure_ready()
        created, run = await create_execution(
            self.runtime, flow_id, context, lease_self=True, **kwargs
        )
        if run is not None:
            return await self.drive(run)
        existing = created.execution
        if existing.status is not ExecutionStatus.PENDING:
            return RunResult.of(existing)
        return await self.run(existing.id)

    async def notify_runnable(self, execution_id: str) -> None:
        """Tell other processes (if a wake signaler is set) that work is ready."""
        await self.runtime.notify_runnable(execution_id)

    async def acquire(
        self, execution_id: str, *, steal: bool = False, start: bool = True
    ) -> Acquired:
        """Lease an execution to this engine (``start=False`` leaves ``pending`` as is).

        Each acquisition gets its own owner id (``<engine owner>/<n>``): a store re-grants
        a live lease to the same owner, so a shared id would let two concurrent calls of
        this engine drive one execution at once.
        """
        await self._ensure_ready()
        return await leasing.acquire(self.runtime, execution_id, steal=steal, start=start)

    def lease_owner(self) -> str:
        """A fresh lease owner id for one acquisition by this engine."""
        return self.runtime.lease_owner()

    async def open_run(self, acquired: Acquired, *, need_flow: bool = True) -> Run | None:
        """Wrap a granted lease in a ``Run`` (None if no lease was granted).

        Raises:
            FlowNotFound: this process lacks the flow and ``need_flow`` is set; the
                execution was given back as it was. Without ``need_flow`` the run gets an
                empty placeholder flow (``run.flow_known`` is False): enough for operations
                that run no step.
        """
        return await leasing.open_run(self.runtime, acquired, need_flow=need_flow)

    async def give_back(self, acquired: Acquired) -> None:
        """Return a lease this process took but will not use, leaving the execution as
        it was (a ``pending`` one ``pending`` again, a recovered one recoverable)."""
        await leasing.give_back_acquired(self.runtime, acquired)

    async def run(self, execution_id: str) -> RunResult:
        """Drive the execution until it completes, fails, is cancelled or waits.

        Never sleeps until a wake time: a waiting execution returns at once.

        Raises:
            ExecutionNotFound: unknown id.
            FlowNotFound, HandlerNotFound: this process lacks the flow, or the handler of
                the step the execution is at; the execution is left as it was (a process
                that has them runs it). A step reached later in this call without a handler
                fails the execution with ``HANDLER_NOT_FOUND``.
        """
        acquired = await self.acquire(execution_id)
        run = await self.open_run(acquired)
        if run is None:
            return RunResult.of(acquired.execution)
        return await self.drive(run, check_handlers=True)

    async def step(self, execution_id: str) -> StepResult:
        """Run exactly one step (after applying any due wake or timeout)."""
        await self._ensure_ready()
        return await driving.step_once(self.runtime, execution_id)

    async def drive(
        self,
        run: Run,
        *,
        max_steps: int | None = None,
        record: builtins.list[tuple[str | None, str | None, str | None]] | None = None,
        stop: asyncio.Event | None = None,
        check_handlers: bool = False,
    ) -> RunResult:
        """Step a leased execution until it stops (or ``max_steps`` handler steps ran, or
        ``stop`` is set: then it is left ``pending`` for anyone to continue).

        ``check_handlers``: raise ``HandlerNotFound`` (execution given back untouched)
        instead of failing it when the step it is at has no handler here.
        """
        return await driving.drive(
            self.runtime, run, max_steps=max_steps, record=record, stop=stop,
            check_handlers=check_handlers,
        )  # fmt: skip

    async def run_until_idle(self, *, max_rounds: int = 10_000) -> int:
        """Run every runnable execution (children too) until none is runnable.

        Due timers are applied first on each round (by the clock). Returns the number of
        executions driven.
        """
        await self._ensure_ready()
        return await driving.run_until_idle(self.runtime, max_rounds=max_rounds)

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
            ResumeTokenExpired, ContextLimitError, InvalidValue (not JSON, NaN/Infinity):
            nothing changed.
            FlowNotFound: this process lacks the flow and ``run_next`` is set (nothing
            changed; ``run_next=False`` works without it).
        """
        await self._ensure_ready()
        return await control.resume(
            self.runtime, execution_id, data, token=token, run_next=run_next
        )

    async def resume_by_token(
        self, token: str, data: Any = None, *, run_next: bool = True
    ) -> RunResult:
        """Resume whichever execution ``token`` belongs to (``run_next`` as ``resume``)."""
        await self._ensure_ready()
        return await control.resume_by_token(self.runtime, token, data, run_next=run_next)

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
            self.runtime, execution_id, step_id, port=port, payload=payload, run_next=run_next
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
            self.runtime, task_id, port=port, output=output, user_id=user_id, run_next=run_next
        )

    async def cancel(
        self, execution_id: str, source: str = "user", reason: str | None = None
    ) -> CancelResult:
        """Cancel atomically (children too). Terminal executions give ``cancelled=False``."""
        await self._ensure_ready()
        return await terminal.cancel(self.runtime, execution_id, source=source, reason=reason)

    async def fail(
        self,
        execution_id: str,
        message: str = "Failed manually",
        step_id: str | None = None,
        code: str = "MANUAL_FAILURE",
    ) -> RunResult:
        """Fail a non-terminal execution with this error (same clean-up as cancel)."""
        await self._ensure_ready()
        return await terminal.fail(
            self.runtime, execution_id, message=message, step_id=step_id, code=code
        )

    async def retry(self, execution_id: str, *, run_next: bool = True) -> RunResult:
        """Continue a ``failed`` execution from the step that failed.

        The step's attempts reset, the context is kept, ``run_number`` + 1 and an
        ``execution.retried`` event is written (see ``engine/retrying.py``). The steps
        run in this call; ``run_next=False`` leaves it ``pending`` for a worker.

        Raises:
            ExecutionNotFound: no such execution.
            ExecutionNotFailed: it is not ``failed`` (or failed across parallel
                branches); nothing changed.
        """
        await self._ensure_ready()
        revived = await retrying.retry(self.runtime, execution_id)
        return await self.run(execution_id) if run_next else revived

    def request_cancel(self, execution_id: str) -> None:
        """Cancel the handler this engine is running for ``execution_id``, if any."""
        self.runtime.request_cancel(execution_id)

    async def tick_timers(self, *, limit: int = 1000) -> builtins.list[str]:
        """Apply every due wake, retry, wait timeout and execution timeout now.

        Woken executions become runnable (``pending``); no step runs here.
        """
        await self._ensure_ready()
        return await timers.tick_timers(self.runtime, limit=limit)

    @property
    def schedules(self) -> Schedules:
        """The cron schedules of this engine's store (see ``engine/schedules_api.py``)."""
        return Schedules(self.runtime)

    async def fire_schedules(self, *, limit: int = 100) -> FireReport:
        """Fire the due times of due schedules, exactly once each (what workers call)."""
        await self._ensure_ready()
        return await scheduling.fire_due(self.runtime, owner=self.owner, limit=limit)

    async def recover_stale(self) -> builtins.list[str]:
        """Make ``running`` executions with expired leases runnable again
        (``run_number += 1``, ``execution.recovered``)."""
        return await timers.recover_stale(self.runtime)

    async def purge(
        self,
        *,
        older_than: timedelta | None = None,
        status: Iterable[ExecutionStatus | str] | None = None,
        flow_id: str | None = None,
        dry_run: bool = False,
        pause: float = 0.0,
        batch_size: int | None = None,
        share: float | None = None,
    ) -> retention.PurgeReport:
        """Purge finished executions in small batches (see docs/retention.md).

        With ``older_than``: those that finished longer ago than that (``status`` and
        ``flow_id`` narrow it). Without: the retention pass (``EngineOptions.retention``
        and each flow's ``retention``), which is what a worker runs periodically.
        Batches yield to this engine's live runs, waiting at most ``pause`` seconds for
        them before each batch, and take at most ``share`` of a busy engine's time
        (default 0.3, or 0.25 on PostgreSQL, whose batches do not block live steps; see
        ``engine/retention.py``).
        """
        await self._ensure_ready()
        size = batch_size or self.options.purge_batch_size
        if older_than is None:
            return await retention.purge_expired(
                self.runtime, self.purge_stats, batch_size=size, pause=pause, share=share
            )
        return await retention.purge(
            self.runtime, self.purge_stats, older_than=older_than, status=status,
            flow_id=flow_id, dry_run=dry_run, batch_size=size, pause=pause, share=share,
        )  # fmt: skip

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
        from flowmonkey.stores.memory import MemoryStore

        return await simulation.simulate(
            self.runtime,
            type(self),
            MemoryStore(),
            flow_id,
            context,
            outcomes=outcomes,
            signals=signals,
            version=version,
            max_steps=max_steps,
        )

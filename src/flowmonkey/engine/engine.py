"""``Engine``: the public API. It holds no execution state; every call loads from the store."""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.clock import Clock, SystemClock
from flowmonkey.engine import control
from flowmonkey.engine.bus import EventBus, Listener
from flowmonkey.engine.limits import ContextSizes, OutputError, dump_value, plan_write
from flowmonkey.engine.options import EngineOptions
from flowmonkey.engine.results import (
    CancelResult,
    CreateResult,
    RunResult,
    SimulationResult,
    StepResult,
)
from flowmonkey.engine.run import Run
from flowmonkey.engine.step import StepCancelled, execute_step
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus, Token, TokenStatus
from flowmonkey.model.flow import Flow, Step
from flowmonkey.model.records import Task
from flowmonkey.stores.base import Acquired, ExecutionQuery, Lease, Page, Store, TaskQuery

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
        self.bus = EventBus()
        self.owner = f"engine-{uuid.uuid4().hex[:12]}"
        """Lease owner id of this engine (a worker sets its own)."""
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: dict[str, Run] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
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
        self.bus.emit(
            [
                Event(
                    "flow.registered",
                    None,
                    self.clock.now(),
                    {"flow_id": flow.id, "version": flow.version},
                )
            ]
        )

    def _handler_registered(self, handler: Any) -> None:
        self.bus.emit(
            [
                Event(
                    "handler.registered",
                    None,
                    self.clock.now(),
                    {"handler_type": getattr(handler, "type", str(handler))},
                )
            ]
        )

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
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            try:
                await self._heartbeat_task
            except asyncio.CancelledError:
                pass
            self._heartbeat_task = None
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
                await control.wake_parent(
                    self,
                    execution.parent_execution_id,
                    execution.parent_step_id,
                    int(execution.metadata.get("parent_visit", 0)),
                )
            except Exception:
                log.exception("waking the parent of %s failed; its poll will notice", execution.id)
        await control.after_terminal(self, execution)

    def register_builtin(self, handler: RegisteredHandler) -> None:
        """Register an engine-provided step type (parallel, switch, ...)."""
        self._builtins[handler.type] = handler

    def resolve_handler(self, step: Step) -> RegisteredHandler | None:
        """The handler for a step: user handlers first, then built-in step types.

        In simulation mode every non-built-in type gets a passthrough handler.
        """
        handler = self.handlers.get(step.type)
        if handler is None:
            handler = self._builtins.get(step.type)
        elif self.options.mode == "simulation" and step.type not in self._builtins:
            from flowmonkey.engine.simulation import passthrough

            return passthrough(step.type)
        if handler is None and self.options.mode == "simulation":
            from flowmonkey.engine.simulation import passthrough

            return passthrough(step.type)
        return handler

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
        await control.wake_parent(self, parent_id, step_id, visit)
        return True

    # -- flows -----------------------------------------------------------------------------

    async def get_flow(self, flow_id: str, version: str | None = None) -> Flow:
        """A registered flow, else one saved in the store (then cached in the registry)."""
        flow = self.flows.get(flow_id, version)
        if flow is not None:
            return flow
        stored = await self.store.get_flow(flow_id, version)
        if stored is None:
            raise errors.FlowNotFound(flow_id, version)
        flow = Flow.from_dict(stored.definition)
        self.flows.register(flow)
        return flow

    async def load_flows_from_store(self) -> int:
        """Register every version of every flow saved in the store; returns the count."""
        count = 0
        for stored in await self.store.list_flows():
            for version in await self.store.flow_versions(stored.flow_id):
                if self.flows.get(stored.flow_id, version) is not None:
                    continue
                found = await self.store.get_flow(stored.flow_id, version)
                if found is not None:
                    self.flows.register(Flow.from_dict(found.definition))
                    count += 1
        return count

    async def save_flow(self, flow: Flow) -> bool:
        """Persist ``flow`` in the store, then register it (versions are immutable).

        The store decides first: a version it refuses (a different definition under the
        same id@version) must not end up registered in this process either.
        """
        from flowmonkey.definitions.validate import raise_for_issues

        await self._ensure_ready()
        raise_for_issues(flow.id, self.flows.validate(flow))
        known = self.flows.get(flow.id, flow.version)
        if known is not None and known.version == flow.version and known != flow:
            self.flows.register(flow)  # raises: versions are immutable
        saved = await self.store.save_flow(flow.to_dict(), now=self.clock.now())
        self.flows.register(flow)
        return saved

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
        created, _ = await self._create(
            flow_id, context, tenant_id=tenant_id, idempotency_key=idempotency_key,
            idempotency_ttl=idempotency_ttl, metadata=metadata,
            parent_execution_id=parent_execution_id, parent_step_id=parent_step_id,
            correlation_id=correlation_id, user_id=user_id, version=version,
            execution_timeout=execution_timeout, wait_timeout=wait_timeout,
            execution_id=execution_id, lease_self=False,
        )  # fmt: skip
        return created

    async def _create(
        self,
        flow_id: str,
        context: Mapping[str, Any] | None,
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
        lease_self: bool,
    ) -> tuple[CreateResult, Run | None]:
        await self._ensure_ready()
        flow = await self.get_flow(flow_id, version)
        initial = dict(context or {})
        if not isinstance(context, Mapping | None):
            raise TypeError("context must be a mapping")
        check_context(initial, self.options)
        now = self.clock.now()
        ttl = idempotency_ttl if idempotency_ttl is not None else self.options.idempotency_ttl
        ttl = min(ttl, self.options.max_idempotency_ttl)
        ex_timeout = execution_timeout or self.options.execution_timeout
        execution = Execution(
            id=execution_id or str(uuid.uuid4()),
            flow_id=flow.id,
            flow_version=flow.version,
            status=ExecutionStatus.PENDING,
            current_step_id=flow.initial_step_id,
            tokens=[Token(id="t0", step_id=flow.initial_step_id)],
            context=initial,
            created_at=now,
            updated_at=now,
            tenant_id=tenant_id,
            metadata=dict(metadata or {}),
            correlation_id=correlation_id,
            user_id=user_id,
            idempotency_key=idempotency_key,
            idempotency_expires_at=now + ttl if idempotency_key is not None else None,
            parent_execution_id=parent_execution_id,
            parent_step_id=parent_step_id,
            execution_timeout=execution_timeout,
            wait_timeout=wait_timeout,
            deadline_at=now + ex_timeout if ex_timeout is not None else None,
            event_seq=1,
        )
        created_event = Event(
            "execution.created",
            execution.id,
            now,
            {
                "execution_id": execution.id,
                "flow_id": flow.id,
                "flow_version": flow.version,
                "parent_execution_id": parent_execution_id,
            },
            1,
            tenant_id,
        )
        lease = None
        if lease_self:
            # ``start`` runs it right away: store it already leased and running, which
            # saves the separate acquire transaction.
            lease = Lease(execution_id=execution.id, owner=self.owner, token=1,
                          expires_at=now + self.options.lease_for)  # fmt: skip
            execution.status = ExecutionStatus.RUNNING
            execution.started_at = now
        stored, created = await self.store.create(execution, [created_event], lease=lease)
        run = None
        if created:
            self.bus.emit([created_event])
            if lease is not None:
                run = Run(self, stored, lease, flow)
            else:
                await self.notify_runnable(stored.id)
        else:
            self.bus.emit(
                [
                    Event(
                        "idempotency.hit",
                        stored.id,
                        now,
                        {
                            "execution_id": stored.id,
                            "flow_id": flow.id,
                            "idempotency_key": idempotency_key,
                        },
                        0,
                        tenant_id,
                    )
                ]
            )
        return CreateResult(execution=stored, created=created), run

    async def start(
        self, flow_id: str, context: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> RunResult:
        """``create`` then ``run`` (an idempotency hit runs/reports the existing one)."""
        created, run = await self._create(flow_id, context, lease_self=True, **kwargs)
        if run is not None:
            return await self.drive(run)
        return await self.run(created.execution.id)

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

        An execution this engine is already driving is never handed out a second time
        (all of this engine's leases share one owner id, so the store cannot tell).
        """
        await self._ensure_ready()
        inflight = self._inflight.get(execution_id)
        if inflight is not None and not steal:
            return Acquired(execution=inflight.execution.clone(), lease=None)
        return await self.store.acquire(
            execution_id,
            owner=self.owner,
            now=self.clock.now(),
            lease_for=self.options.lease_for,
            steal=steal,
            start=start,
        )

    async def open_run(self, acquired: Acquired) -> Run | None:
        """Wrap a granted lease in a ``Run`` (None if no lease was granted)."""
        if acquired.lease is None:
            return None
        execution = acquired.execution
        try:
            flow = await self.get_flow(execution.flow_id, execution.flow_version)
        except errors.FlowNotFound as exc:
            # Nothing can ever run it here: fail it (terminal, lease released) rather than
            # leave it running and unclaimable.
            placeholder = Flow(
                id=execution.flow_id, version=execution.flow_version, initial_step_id="", steps={}
            )
            run = Run(self, execution, acquired.lease, placeholder)
            from flowmonkey.engine.step import fail_execution

            await fail_execution(run, exc.code, exc.message, step_id=execution.current_step_id)
            return run
        except BaseException:
            await self.store.release(acquired.lease)
            raise
        run = Run(self, execution, acquired.lease, flow)
        if acquired.recovered:
            control.note_recovery(run)
        return run

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
        acquired = await self.acquire(execution_id)
        run = await self.open_run(acquired)
        if run is None:
            ex = acquired.execution
            return StepResult(
                step_id=None, outcome=None, next_step_id=None, status=ex.status, execution=ex
            )
        outcome: builtins.list[tuple[str | None, str | None, str | None]] = []
        result = await self.drive(run, max_steps=1, record=outcome)
        step_id, kind, next_id = outcome[0] if outcome else (None, None, None)
        return StepResult(
            step_id=step_id,
            outcome=kind,
            next_step_id=next_id,
            status=result.status,
            execution=result.execution,
        )

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
        execution = run.execution
        self._inflight[execution.id] = run
        self._ensure_heartbeats()
        steps = 0
        waiting = ExecutionStatus.WAITING
        try:
            await control.apply_due(self, run)
            while True:
                status = execution.status
                if status.is_terminal or status is waiting:
                    break
                # Between steps only the execution deadline can fall due; the time of the
                # last commit is a close enough "now" for that check (saves a clock read).
                deadline = execution.deadline_at
                if steps and deadline is not None and deadline <= execution.updated_at:
                    await control.apply_due(self, run)
                    continue
                token = run.active_token()
                if token is None:
                    break
                if max_steps is not None and steps >= max_steps:
                    break
                if stop is not None and stop.is_set():
                    break
                if run.concurrent or (
                    len(execution.tokens) > 1
                    and sum(t.status is TokenStatus.ACTIVE for t in execution.tokens) > 1
                ):
                    from flowmonkey.engine.parallel import run_branches

                    await run_branches(self, run)
                    steps += 1
                    continue
                step_id = token.step_id
                kind, next_id = await execute_step(self, run, token)
                steps += 1
                if record is not None:
                    record.append((step_id, kind if kind != "error" else None, next_id))
            if not run.released:
                if execution.status is ExecutionStatus.RUNNING:
                    # Stopped between steps (``step()``): leave it runnable for anyone.
                    execution.status = ExecutionStatus.PENDING
                    await run.commit(release=True)
                    await self.notify_runnable(execution.id)
                else:
                    await run.commit(release=True)
        except (errors.LeaseLost, StepCancelled):
            fresh = await self.store.get(execution.id)
            if fresh is None:
                raise errors.ExecutionNotFound(execution.id) from None
            return RunResult.of(fresh)
        finally:
            if self._inflight.get(execution.id) is run:
                del self._inflight[execution.id]
        return RunResult.of(execution)

    async def run_until_idle(self, *, max_rounds: int = 10_000) -> int:
        """Run every runnable execution (children too) until none is runnable.

        Due timers are applied first on each round (by the clock). Returns the number of
        executions driven.
        """
        await self._ensure_ready()
        driven = 0
        for _ in range(max_rounds):
            await self.tick_timers()
            claimed = await self.store.claim(
                owner=self.owner,
                now=self.clock.now(),
                lease_for=self.options.lease_for,
                limit=100,
            )
            if not claimed:
                return driven
            for acquired in claimed:
                run = await self.open_run(acquired)
                if run is not None:
                    await self.drive(run)
                    driven += 1
        return driven

    # -- waits, resume, signals, cancel, fail: see control.py -----------------------------

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
        return await control.cancel(self, execution_id, source=source, reason=reason)

    async def fail(
        self,
        execution_id: str,
        message: str = "Failed manually",
        step_id: str | None = None,
        code: str = "MANUAL_FAILURE",
    ) -> RunResult:
        """Fail a non-terminal execution with this error (same clean-up as cancel)."""
        await self._ensure_ready()
        return await control.fail(self, execution_id, message=message, step_id=step_id, code=code)

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
        return await control.tick_timers(self, limit=limit)

    async def recover_stale(self) -> builtins.list[str]:
        """Make ``running`` executions with expired leases runnable again
        (``run_number += 1``, ``execution.recovered``)."""
        return await control.recover_stale(self)

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

    # -- heartbeats for suspended handlers ---------------------------------------------------

    def track_suspended(self, run: Run) -> None:
        """A handler suspended (kept for the step runner; heartbeats cover every run)."""
        self._ensure_heartbeats()

    def untrack_suspended(self, run: Run) -> None:
        """The handler finished."""

    def _ensure_heartbeats(self) -> None:
        task = self._heartbeat_task
        if task is None or task.done():
            self._heartbeat_task = asyncio.get_running_loop().create_task(self._heartbeats())

    async def _heartbeats(self) -> None:
        """Extend the lease of every run this engine drives, every third of a lease.

        Runs of many quick steps need it as much as one long handler: a lease is only
        renewed here, not by step commits.
        """
        interval = max(self.options.lease_for.total_seconds() / 3, 0.05)
        failures = 0
        while True:
            await asyncio.sleep(interval)
            for run in tuple(self._inflight.values()):
                if run.released:
                    continue
                try:
                    await run.heartbeat()
                    failures = 0
                except errors.LeaseLost:
                    log.warning("lost the lease on %s; cancelling its step", run.execution.id)
                    run.cancel_handlers()
                except Exception as exc:
                    failures += 1
                    # One line per failure: the store may be briefly unreachable.
                    log.warning(
                        "heartbeat for %s failed (%d in a row): %s", run.execution.id, failures, exc
                    )


def check_context(context: Mapping[str, Any], options: EngineOptions) -> dict[str, bytes]:
    """Check a whole context against the limits; returns the encoded values.

    Raises:
        ContextLimitError: a limit is broken.
        ValueError: a value is not JSON.
    """
    sizes = ContextSizes({})
    probe: dict[str, Any] = {}
    out = {}
    for key, value in context.items():
        if not isinstance(key, str):
            raise ValueError(f"context keys must be strings, got {key!r}")
        try:
            top, new_top, encoded = plan_write(
                probe, key, value, options.context_limits, sizes, literal=True
            )
        except OutputError as exc:
            raise ValueError(str(exc)) from None
        probe[top] = new_top
        sizes.update(top, len(encoded))
        out[key] = encoded
    return out


def dump_payload(value: Any, what: str) -> bytes:
    """JSON-encode user data (resume/signal payloads) or raise ``ValueError``."""
    try:
        return dump_value(value, what=what)
    except OutputError as exc:
        raise ValueError(str(exc)) from None


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async callable."""
    out = fn(*args)
    if inspect.isawaitable(out):
        return await out
    return out


_ = Awaitable  # re-exported type used in annotations of callers

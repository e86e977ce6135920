"""``Runtime``: what the engine's operations share (store, registries, options, clock, bus,
the runs in flight), and nothing else.

The operation modules (``leasing``, ``step``, ``timers``, ``terminal``, ``control``...) take a
``Runtime``; ``Engine`` is a thin facade that builds one and calls them. So imports point one
way, from ``engine.py`` down to this module. The one call that must go back up is what
follows an execution's terminal commit (waking its parent, which may end and wake its own,
then hooks): it recurses across executions through ``timers``, which sits above the step
code that ends executions, so the ``Engine`` installs it here as ``after_terminal``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flowmonkey.clock import Clock
from flowmonkey.durations import parse_duration
from flowmonkey.engine.bus import EventBus
from flowmonkey.engine.commits import CommitBatcher, CreateBatcher
from flowmonkey.engine.heartbeats import LeaseKeeper
from flowmonkey.engine.late_events import LateEvents
from flowmonkey.engine.options import EngineOptions
from flowmonkey.engine.sync_pool import SyncPool
from flowmonkey.engine.table_cache import TableCache
from flowmonkey.handlers.secrets import has_secret_refs
from flowmonkey.model.execution import Execution
from flowmonkey.model.flow import Flow, Step
from flowmonkey.stores.base import Store

if TYPE_CHECKING:
    from flowmonkey.definitions.registry import FlowRegistry
    from flowmonkey.handlers.registry import HandlerRegistry, RegisteredHandler

__all__ = ["Hook", "Runtime"]

log = logging.getLogger("flowmonkey.engine")

Hook = Callable[[Execution], Any]
"""A lifecycle hook: called (sync or async) with the final ``Execution``."""


async def _nothing_after(execution: Execution) -> None:
    return None


class Runtime:
    """The state one engine's operations share. Holds no execution state of its own
    beyond the runs this process is driving right now (``inflight``)."""

    __slots__ = (
        "_acquisitions",
        "_pool",
        "_quiet",
        "after_terminal",
        "builtins",
        "bus",
        "clock",
        "committer",
        "creator",
        "flows",
        "handlers",
        "hooks",
        "inflight",
        "last_run_end",
        "late_events",
        "leases",
        "options",
        "owner",
        "ready",
        "runnable",
        "secret_steps",
        "services",
        "store",
        "tables",
        "wake_signaler",
    )

    def __init__(
        self,
        store: Store,
        handlers: HandlerRegistry,
        flows: FlowRegistry,
        options: EngineOptions,
        clock: Clock,
    ) -> None:
        self.store = store
        self.handlers = handlers
        self.flows = flows
        self.options = options
        self.clock = clock
        self.bus = EventBus()
        self.owner = f"engine-{uuid.uuid4().hex[:12]}"
        """Lease owner prefix of this engine (a worker sets its own worker id)."""
        self.inflight: dict[str, Any] = {}
        """The ``Run`` of each execution this process is driving, by execution id."""
        self.committer = CommitBatcher(store, busy=lambda: len(self.inflight) > 1)
        """Groups the step commits of concurrent executions (see ``commits.py``)."""
        self.creator = CreateBatcher(store)
        """Groups concurrent creates into one store transaction (the API turns it on)."""
        self.leases = LeaseKeeper(self)
        self.hooks: dict[str, dict[str, list[Hook]]] = {}
        self.builtins: dict[str, RegisteredHandler] = {}
        """Engine-provided step types (parallel, switch, subflow...), after user handlers."""
        self.wake_signaler: Any = None
        """Optional ``WakeSignaler``: told when an execution becomes runnable."""
        self.after_terminal: Callable[[Execution], Awaitable[None]] = _nothing_after
        """Wake the parent, then run hooks, after a terminal commit (set by ``Engine``)."""
        self.tables = TableCache(store)
        """Data table definitions this process has seen (see ``engine/tables.py``)."""
        self.late_events = LateEvents(self)
        """Events about an execution from outside its steps (``idempotency.hit``)."""
        self.runnable: frozenset[tuple[str, str]] | None = None
        """Cache of ``lookup.runnable_flows`` (reset when a flow or handler registers)."""
        self.ready = False
        from flowmonkey.handlers.standard.services import StandardServices

        self.services = StandardServices(
            http_allow=options.http_allow,
            base_url=options.base_url,
            secrets=options.secrets,
            resolver=options.http_resolver,
        )
        """What the standard handlers share: one HTTP client per engine, the secrets."""
        self.secret_steps: dict[tuple[str, str, str], bool] = {}
        self._acquisitions = 0
        self._pool: SyncPool | None = None
        self.last_run_end = 0.0
        """``time.monotonic()`` when ``inflight`` last became empty (the purge's pacing)."""
        self._quiet: list[asyncio.Future[None]] = []

    def run_ended(self) -> None:
        """Called by ``drive`` when ``inflight`` becomes empty: wakes ``until_quiet``."""
        self.last_run_end = time.monotonic()
        waiters, self._quiet = self._quiet, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def until_quiet(self, timeout: float) -> None:
        """Wait until no run is in flight, at most ``timeout`` seconds. A future per
        call, not an ``asyncio.Event``: an engine may be used from several event loops
        (tests), and an event binds to the first."""
        if not self.inflight:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._quiet.append(waiter)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can eat a cancel
                await waiter
        except TimeoutError:
            self._quiet.remove(waiter)  # still busy: the caller goes ahead anyway

    @property
    def sync_pool(self) -> ThreadPoolExecutor:
        """The bounded thread pool that runs sync handlers (created on first use)."""
        return self.sync_handlers.executor

    @property
    def sync_handlers(self) -> SyncPool:
        """The sync-handler pool with its accounting (busy threads, queued steps)."""
        if self._pool is None:
            self._pool = SyncPool(self.options.sync_handler_threads)
        return self._pool

    def close_pool(self) -> None:
        """Shut the sync-handler pool down without waiting for running handlers."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def uses_secrets(self, flow: Flow, step: Step) -> bool:
        """True when ``step``'s config references ``{{ secrets.NAME }}`` (cached per step)."""
        key = (flow.id, flow.version, step.id)
        found = self.secret_steps.get(key)
        if found is None:
            found = self.secret_steps[key] = has_secret_refs(step.config)
        return found

    def lease_owner(self) -> str:
        """A fresh lease owner id for one acquisition by this engine.

        Each acquisition gets its own owner id (``<engine owner>/<n>``): a store re-grants
        a live lease to the same owner, so a shared id would let two concurrent calls of
        this engine drive one execution at once.
        """
        self._acquisitions += 1
        return f"{self.owner}/{self._acquisitions}"

    async def notify_runnable(self, execution_id: str) -> None:
        """Tell other processes (if a wake signaler is set) that work is ready."""
        if self.wake_signaler is not None:
            try:
                await self.wake_signaler.notify(execution_id)
            except Exception:
                log.warning("wake signal for %s failed; workers will poll", execution_id)

    def request_cancel(self, execution_id: str) -> None:
        """Cancel the handler this engine is running for ``execution_id``, if any."""
        run = self.inflight.get(execution_id)
        if run is not None:
            run.cancel_handlers()

    def wait_timeout_for(self, execution: Execution, step: Step) -> timedelta | None:
        """How long a wait at ``step`` may last before ``onTimeout``/``TIMEOUT``.

        A user task's ``dueIn`` and a signal wait's ``timeout`` win; otherwise the
        execution's ``wait_timeout``, else the engine default.
        """
        own = None
        if step.type == "userTask":
            own = step.config.get("dueIn")
        elif step.type in ("waitForSignal", "webhook"):
            own = step.config.get("timeout")
        if own is not None:
            return parse_duration(own)
        if execution.wait_timeout is not None:
            return execution.wait_timeout
        return self.options.wait_timeout

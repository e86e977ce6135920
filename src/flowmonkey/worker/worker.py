"""``Worker``: runs executions from a store without anyone calling ``engine.run``.

One ``Worker.run()`` is an ``asyncio.TaskGroup`` of:

- the **claim loop**: keeps up to ``concurrency`` executions in flight. It leases
  runnable executions with ``store.claim`` (one transaction, at most the free slots) and
  drives each in its own task. When idle it waits for a wake signal, a freed slot or the
  poll interval, whichever comes first;
- the **scheduler**: ``engine.tick_timers()`` every ``scheduler_interval`` (due wakes,
  retries, wait and execution timeouts become runnable);
- the **reaper**: ``engine.recover_stale()`` every ``reaper_interval``;
- the **retention pass**: ``engine.purge()`` every ``purge_interval`` (small batches,
  sized by time and run between this worker's steps, see ``engine/retention.py``; a
  no-op unless a retention period is configured);
- the **schedule loop** (``schedule_loop.py``): fires due cron schedule times, exactly once
  across every worker;
- the **wake listener** (when there is a ``WakeSignaler``) and the optional health server.

Lease heartbeats for every driven run come from the engine.
Any number of workers may share one store: claims are atomic and every commit is fenced
by its lease, so no step is committed twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.worker.coverage import Coverage
from flowmonkey.worker.health import HealthServer
from flowmonkey.worker.options import WorkerOptions
from flowmonkey.worker.schedule_loop import run_schedules
from flowmonkey.worker.scheduler import (
    Outage,
    listen_for_wakes,
    one_line,
    run_every,
    wait_or_timeout,
)

if TYPE_CHECKING:
    from flowmonkey.coordination.base import WakeSignaler
    from flowmonkey.engine.engine import Engine
    from flowmonkey.engine.run import Run
    from flowmonkey.model.events import Event
    from flowmonkey.stores.base import Acquired

__all__ = ["Worker"]

log = logging.getLogger("flowmonkey.worker")

_TIMER_BATCH = 1000
"""``tick_timers`` limit; a full batch means more may be due, so tick again at once."""
_HELPER_GRACE = 5.0
"""Seconds the scheduler and reaper get to finish their current call at shutdown."""
_CANCEL_WAIT = 5.0
"""Seconds to wait for cancelled steps to unwind before giving up on them."""
_EVENT_LEVELS = {
    "execution.recovered": logging.INFO,
    "step.failed": logging.INFO,
    "step.retry": logging.INFO,
    "step.timeout": logging.WARNING,
    "execution.failed": logging.INFO,
    "step.completed": logging.DEBUG,
    "execution.completed": logging.DEBUG,
}


class Worker:
    """Claims and drives executions until stopped. See the module docstring.

    Args:
        engine: the engine to drive executions with (its store, handlers and flows). The
            worker sets ``engine.owner`` to its worker id (and ``engine.options.lease_for``
            when ``options.lease_for`` is set); it opens the engine but does not close it.
        options: see ``WorkerOptions``.
        wake_signaler: wakes this worker as soon as work is announced. The worker starts
            and closes it, and also sets it as ``engine.wake_signaler`` (when unset) so
            executions this process makes runnable are announced to the others. Without
            one, a store that signals by itself (``PostgresStore``: LISTEN/NOTIFY) is
            listened to automatically; otherwise the worker polls.
    """

    def __init__(
        self,
        engine: Engine,
        options: WorkerOptions | None = None,
        *,
        wake_signaler: WakeSignaler | None = None,
    ) -> None:
        self.engine = engine
        self.options = options if options is not None else WorkerOptions()
        self._given_signaler = wake_signaler
        self._extra: dict[str, Any] = {"worker_id": self.options.worker_id}
        self._stopping = asyncio.Event()
        self._force = asyncio.Event()
        self._kick = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], Run | None] = {}
        self._maybe_more = False
        # Ids announced by wake signals: taken by primary key before the generic claim,
        # which scans the runnable indexes (a signalled step starts a little sooner).
        self._notified: collections.deque[str] = collections.deque(maxlen=1024)
        # Executions this worker is driving. All its leases share one owner id, and a
        # store re-grants a lease to its owner, so an announced id must be checked here
        # or the worker could start a second drive of an execution it already runs.
        self._running_ids: dict[asyncio.Task[None], str] = {}
        self._state = "new"
        self._store_ok = False
        self._last_error: str | None = None
        self._health: HealthServer | None = None
        self.last_claim_at: datetime | None = None
        """When this worker last leased at least one execution."""
        self.last_poll_at: datetime | None = None
        """When the claim loop last queried the store successfully."""
        self.started = 0
        """Executions this worker has started driving."""
        self._wake_ready = asyncio.Event()
        self._coverage = Coverage(engine, log, self._extra)

    @property
    def unrunnable(self) -> int:
        """Runnable executions (at the last survey, every ``reaper_interval``) that this
        worker cannot run: it lacks their flow or a handler. It never claims them."""
        return self._coverage.unrunnable

    # -- public surface ------------------------------------------------------------------

    @property
    def worker_id(self) -> str:
        """The lease owner id of this worker."""
        return self.options.worker_id

    @property
    def in_flight(self) -> int:
        """Executions being driven right now."""
        return len(self._tasks)

    @property
    def state(self) -> str:
        """``new``, ``starting``, ``running``, ``stopping`` or ``stopped``."""
        return self._state

    @property
    def health_port(self) -> int | None:
        """The bound port of the health server (useful with ``health_port=0``)."""
        return self._health.port if self._health is not None else None

    @property
    def listening(self) -> bool:
        """True once the wake signaler (if any) is subscribed."""
        return self._wake_ready.is_set()

    def stop(self) -> None:
        """Stop claiming; in-flight steps get ``shutdown_grace`` seconds, then ``run()``
        returns. Call it from the worker's event loop (else use
        ``loop.call_soon_threadsafe(worker.stop)``). Calling it again skips the grace."""
        if self._stopping.is_set():
            self._force.set()
        self._stopping.set()
        self._kick.set()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, details)`` as served on ``GET /healthz``."""
        healthy = self._state == "running" and self._store_ok
        if healthy:
            status = "ok"
        elif self._state == "running" or (self._state == "starting" and self._last_error):
            status = "unavailable"
        else:
            status = self._state
        body: dict[str, Any] = {
            "status": status,
            "worker_id": self.worker_id,
            "in_flight": self.in_flight,
            "concurrency": self.options.concurrency,
            "last_claim_at": _iso(self.last_claim_at),
            "last_poll_at": _iso(self.last_poll_at),
            "unrunnable": self.unrunnable,
            # Steps queued for a sync-handler thread (their timeouts have not started).
            "sync_handlers": self.engine.sync_handlers.stats(),
            "purged_executions": self.engine.purge_stats.executions,
            "purged_rows": self.engine.purge_stats.rows,
        }
        if not healthy and self._last_error:
            body["error"] = self._last_error
        return healthy, body

    async def run(self, *, handle_signals: bool | None = None) -> None:
        """Run until ``stop()`` (or SIGTERM/SIGINT), then shut down gracefully.

        Args:
            handle_signals: install SIGTERM/SIGINT handlers for the duration of the run
                (a second signal skips the grace period). Default: only when running in
                the main thread.

        Raises:
            SchemaVersionError: the store's schema does not match this flowmonkey.
            StoreError: the store cannot be opened for a reason other than being
                unreachable (an unreachable store is retried with backoff).
            OSError: the health port cannot be bound.
        """
        if self._state != "new":
            raise RuntimeError("a Worker can run only once; create a new one")
        self._state = "starting"
        loop = asyncio.get_running_loop()
        engine = self.engine
        saved_owner, saved_signaler, saved_options = (
            engine.owner,
            engine.wake_signaler,
            engine.options,
        )
        engine.owner = self.worker_id
        if self.options.lease_for is not None:
            # Claims and the engine's heartbeats must agree on the lease length.
            engine.options = replace(engine.options, lease_for=self.options.lease_for)
        if handle_signals is None:
            handle_signals = threading.current_thread() is threading.main_thread()
        installed = self._install_signals(loop) if handle_signals else []
        unsubscribe = self._subscribe_events()
        signaler: WakeSignaler | None = None
        try:
            if self.options.health_port is not None:
                self._health = HealthServer(
                    self.health, host=self.options.health_host, port=self.options.health_port
                )
                await self._health.start()
            if not await self._initialize():
                return
            signaler = self._choose_signaler()
            self._state = "running"
            log.info(
                "worker %s started (concurrency %d, store %r)", self.worker_id,
                self.options.concurrency, engine.store, extra=self._extra,
            )  # fmt: skip
            await self._run_loops(signaler)
        finally:
            self._state = "stopped"
            if self._tasks:  # run() itself was cancelled: do not leave orphan drives
                await self._cancel(set(self._tasks))
            for sig in installed:
                loop.remove_signal_handler(sig)
            for undo in unsubscribe:
                undo()
            if self._health is not None:
                await self._health.close()
            if signaler is not None:
                with contextlib.suppress(Exception):
                    await signaler.close()
            engine.owner, engine.wake_signaler = saved_owner, saved_signaler
            engine.options = saved_options
            log.info("worker %s stopped", self.worker_id, extra=self._extra)

    # -- startup -------------------------------------------------------------------------

    async def _initialize(self) -> bool:
        """Open the store, retrying an unreachable one with capped exponential backoff.
        False when ``stop()`` came first."""
        delay = min(0.5, self.options.max_backoff)
        attempt = 0
        while True:
            try:
                await self.engine.initialize()
                # Flows other processes saved: claims are limited to what this can run.
                await self.engine.load_flows_from_store(strict=False)
            except errors.SchemaVersionError:
                raise
            except errors.StoreUnavailable as exc:
                attempt += 1
                self._last_error = one_line(exc)
                log.warning(
                    "store unavailable (attempt %d, retrying in %.1fs): %s", attempt, delay,
                    self._last_error,
                    extra={**self._extra, "error": self._last_error, "attempt": attempt},
                )  # fmt: skip
                if await wait_or_timeout(self._stopping, delay):
                    return False
                delay = min(delay * 2, self.options.max_backoff)
                continue
            self._store_ok = True
            self._last_error = None
            return not self._stopping.is_set()

    def _choose_signaler(self) -> WakeSignaler | None:
        if self._given_signaler is not None:
            if self.engine.wake_signaler is None:
                self.engine.wake_signaler = self._given_signaler
            return self._given_signaler
        # A store that NOTIFYs inside its own transactions (PostgresStore) offers a
        # matching listener; the engine need not announce anything itself then.
        factory = getattr(self.engine.store, "wake_signaler", None)
        if callable(factory):
            made: WakeSignaler = factory()
            return made
        return None

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        installed: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not supported here (e.g. Windows): stop() still works
            installed.append(sig)
        return installed

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self._stopping.is_set():
            log.warning("%s again: cancelling in-flight steps now", name, extra=self._extra)
        else:
            log.info(
                "%s: stopping (in-flight steps get %.0fs)", name, self.options.shutdown_grace,
                extra=self._extra,
            )  # fmt: skip
        self.stop()

    def _subscribe_events(self) -> list[Any]:
        """Log step and execution events at their level, if that level is enabled."""
        wanted = [t for t, level in _EVENT_LEVELS.items() if log.isEnabledFor(level)]
        return [self.engine.on(event_type, self._log_event) for event_type in wanted]

    def _log_event(self, event: Event) -> None:
        data = event.data
        log.log(
            _EVENT_LEVELS.get(event.type, logging.DEBUG), "%s %s", event.type,
            data.get("step_id") or "",
            extra={**self._extra, "execution_id": event.execution_id, "step": data.get("step_id"),
                   "event": event.type, "run_number": data.get("run_number")},
        )  # fmt: skip

    # -- the loops -----------------------------------------------------------------------

    async def _run_loops(self, signaler: WakeSignaler | None) -> None:
        engine, options = self.engine, self.options
        async with asyncio.TaskGroup() as group:
            helpers = [
                group.create_task(run_every(
                    "scheduler (tick_timers)", options.scheduler_interval,
                    lambda: engine.tick_timers(limit=_TIMER_BATCH), stopping=self._stopping,
                    log=log, extra=self._extra, on_work=self._runnable, batch=_TIMER_BATCH,
                    max_backoff=options.max_backoff,
                ), name="flowmonkey-scheduler"),
                group.create_task(run_every(
                    "reaper (recover_stale)", options.reaper_interval, engine.recover_stale,
                    stopping=self._stopping, log=log, extra=self._extra, on_work=self._runnable,
                    max_backoff=options.max_backoff,
                ), name="flowmonkey-reaper"),
                group.create_task(run_every(
                    "survey (runnable flows)", options.reaper_interval, self._coverage.survey,
                    stopping=self._stopping, log=log, extra=self._extra,
                    max_backoff=options.max_backoff,
                ), name="flowmonkey-survey"),
                group.create_task(run_every(
                    "retention (purge)", options.purge_interval, self._purge,
                    stopping=self._stopping, log=log, extra=self._extra,
                    max_backoff=options.max_backoff,
                ), name="flowmonkey-retention"),
            ]  # fmt: skip
            if options.fire_schedules:
                helpers.append(group.create_task(run_schedules(
                    engine, options.schedule_interval, stopping=self._stopping,
                    on_work=self._runnable, log=log, extra=self._extra,
                    max_backoff=options.max_backoff,
                ), name="flowmonkey-schedules"))  # fmt: skip
            # The engine heartbeats every run it drives; nothing here holds anything that a
            # cancellation could leave behind.
            cut: list[asyncio.Task[Any]] = []
            if signaler is not None:
                listen = listen_for_wakes(
                    signaler, self.options.poll_interval, self._runnable, log=log,
                    extra=self._extra, max_backoff=self.options.max_backoff,
                    on_ready=self._wake_ready.set, stopping=self._stopping,
                )  # fmt: skip
                cut.append(group.create_task(listen, name="flowmonkey-wake"))
            await self._claim_loop()
            self._state = "stopping"
            for task in cut:
                task.cancel()
            # Let the scheduler and reaper finish the call they are in (cancelling one
            # mid-call could leave a lease behind until it expires).
            _, pending = await asyncio.wait(helpers, timeout=_HELPER_GRACE)
            for task in pending:
                task.cancel()

    async def _purge(self) -> list[str]:
        await self.engine.purge(pause=self.options.purge_pause, share=self.options.purge_share)
        return []  # purging makes nothing runnable

    def _runnable(self, ids: list[str]) -> None:
        """Executions became runnable (wake signal, scheduler, reaper): claim them now."""
        self._notified.extend(ids)
        self._maybe_more = True
        self._kick.set()

    async def _claim_loop(self) -> None:
        """Keep up to ``concurrency`` executions in flight until stopped, then drain."""
        engine, options = self.engine, self.options
        outage = Outage(log, "claiming", self._extra)
        delay = options.poll_interval
        while not self._stopping.is_set():
            free = options.concurrency - len(self._tasks)
            if free > 0 and self._notified:
                free -= await self._take_notified(free)
            if free > 0:
                # Cleared before the query: a kick that arrives during it is kept.
                self._kick.clear()
                try:
                    claimed = await engine.store.claim(
                        owner=engine.owner, now=engine.clock.now(),
                        lease_for=engine.options.lease_for, limit=free,
                        flows=engine.runnable_flows(),
                    )  # fmt: skip
                except Exception as exc:
                    self._store_ok = False
                    self._last_error = one_line(exc)
                    delay = min(max(delay * 2, options.poll_interval), options.max_backoff)
                    outage.failed(exc, delay)
                    await wait_or_timeout(self._stopping, delay)
                    continue
                outage.succeeded()
                self._store_ok, self._last_error = True, None
                delay = options.poll_interval
                now = engine.clock.now()
                self.last_poll_at = now
                if claimed:
                    self.last_claim_at = now
                for acquired in claimed:
                    self._start(acquired)
                # A full batch means more may be waiting: claim again as soon as a slot
                # frees instead of after the poll interval.
                self._maybe_more = len(claimed) >= free
                if self._maybe_more and len(self._tasks) < options.concurrency:
                    continue
            await wait_or_timeout(self._kick, options.poll_interval)
            self._kick.clear()
        await self._drain()

    async def _take_notified(self, free: int) -> int:
        """Acquire announced executions by id; returns how many were started. Anything
        that goes wrong falls back to the generic claim, which finds them too."""
        engine, started = self.engine, 0
        while self._notified and started < free and not self._stopping.is_set():
            execution_id = self._notified.popleft()
            if execution_id in self._running_ids.values() or self._coverage.left(execution_id):
                continue
            try:
                acquired = await engine.acquire(execution_id)
            except errors.ExecutionNotFound:
                continue
            except Exception:
                self._notified.clear()
                break
            if acquired.lease is None:
                continue  # another worker got it first, or it is already finished
            ex = acquired.execution
            if (ex.flow_id, ex.flow_version) not in engine.runnable_flows():
                # Announced by id, not claimed by flow: this worker lacks the flow or a
                # handler of it. Leave it as it was for a worker that has them.
                self._coverage.gave_back(execution_id)
                await engine.give_back(acquired)
                continue
            self._start(acquired)
            started += 1
        return started

    def _start(self, acquired: Acquired) -> None:
        task = asyncio.get_running_loop().create_task(
            self._execute(acquired), name=f"flowmonkey-run:{acquired.execution.id}"
        )
        self._tasks[task] = None
        self._running_ids[task] = acquired.execution.id
        self.started += 1
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._running_ids.pop(task, None)
        if self._maybe_more:
            self._kick.set()

    async def _execute(self, acquired: Acquired) -> None:
        """Drive one leased execution; errors are logged, never raised (the lease then
        expires and any worker retries the execution)."""
        engine = self.engine
        execution = acquired.execution
        extra = {**self._extra, "execution_id": execution.id, "step": execution.current_step_id}
        try:
            run = await engine.open_run(acquired)
            if run is None:
                return
            task = asyncio.current_task()
            if task is not None and task in self._tasks:
                self._tasks[task] = run
            if acquired.recovered:
                log.info(
                    "recovering %s at step %s (run %d)", execution.id,
                    execution.current_step_id, run.execution.run_number,
                    extra={**extra, "run_number": run.execution.run_number},
                )  # fmt: skip
            # On shutdown the run stops between steps and is left pending for others.
            result = await engine.drive(run, stop=self._stopping, check_handlers=True)
            log.debug("execution %s is %s", execution.id, result.status.value,
                      extra={**extra, "status": result.status.value})  # fmt: skip
        except (errors.FlowNotFound, errors.HandlerNotFound) as exc:
            # Announced by id (a wake signal), not claimed by flow: given back untouched.
            self._coverage.gave_back(execution.id)
            log.warning("left %s for another worker: %s", execution.id, exc.message,
                        extra={**extra, "error": exc.message})  # fmt: skip
        except errors.StoreUnavailable as exc:
            log.warning(
                "store unavailable while driving %s; it is retried once its lease expires: %s",
                execution.id, one_line(exc), extra={**extra, "error": one_line(exc)},
            )  # fmt: skip
        except Exception as exc:
            log.exception("driving %s failed: %s", execution.id, one_line(exc),
                          extra={**extra, "error": one_line(exc)})  # fmt: skip

    # -- shutdown ------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Give in-flight steps ``shutdown_grace`` seconds, then cancel the rest."""
        pending = set(self._tasks)
        if not pending:
            return
        loop = asyncio.get_running_loop()
        grace = self.options.shutdown_grace
        log.info(
            "stopping: waiting up to %.1fs for %d in-flight execution(s)", grace, len(pending),
            extra={**self._extra, "count": len(pending)},
        )  # fmt: skip
        deadline = loop.time() + grace
        forced: asyncio.Task[Any] = loop.create_task(self._force.wait())
        try:
            while pending and not self._force.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                waiting: set[asyncio.Task[Any]] = {*pending, forced}
                await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                pending = {t for t in pending if not t.done()}
        finally:
            forced.cancel()
        pending = {t for t in pending if not t.done()}
        if pending:
            await self._cancel(pending)

    async def _cancel(self, tasks: set[asyncio.Task[None]]) -> None:
        runs = {task: self._tasks.get(task) for task in tasks}
        for task, run in runs.items():
            eid = run.execution.id if run is not None else task.get_name().partition(":")[2]
            log.warning(
                "cancelling in-flight execution %s after the shutdown grace", eid,
                extra={**self._extra, "execution_id": eid,
                       "step": run.execution.current_step_id if run is not None else None},
            )  # fmt: skip
            task.cancel()
        await asyncio.wait(tasks, timeout=_CANCEL_WAIT)
        for task, run in runs.items():
            if run is not None and task.done() and not run.released:
                await self._expire(run)

    async def _expire(self, run: Run) -> None:
        """End the lease of a cancelled run now instead of at its expiry, so another
        worker recovers the execution at once (``run_number += 1``). Not a release: a
        ``running`` execution without a lease is only recovered after ``stale_after``."""
        engine = self.engine
        with contextlib.suppress(Exception):
            await engine.store.heartbeat(run.lease, now=engine.clock.now(), lease_for=timedelta(0))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None

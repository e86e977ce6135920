"""The bounded thread pool of sync (``def``) handlers, and when a handler really starts.

When every thread is busy a step's handler only queues: its timeout must not run out
while it waits (it never started), so the engine counts the step timeout from the moment
a thread picks the handler up, and bounds the wait itself separately
(``EngineOptions.sync_queue_timeout`` -> ``HANDLER_QUEUE_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from flowmonkey.model.result import Result

__all__ = ["HANDLER_QUEUE_TIMEOUT", "Raised", "SyncPool"]

log = logging.getLogger("flowmonkey.engine")

HANDLER_QUEUE_TIMEOUT = "HANDLER_QUEUE_TIMEOUT"
"""Failure code of a step whose sync handler found no free thread in time (retryable)."""


class Raised:
    """What a handler raised in its thread, handed back as a value: a ``GeneratorExit``
    (or any BaseException) set on a future would be thrown into the awaiting coroutine
    stack, where generator-based awaitables take it for a request to close."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _guarded(fn: Callable[[Any], Any], arg: Any) -> Any:
    try:
        return fn(arg)
    except BaseException as exc:  # SystemExit from a handler must not end the thread's work
        return Raised(exc)


class SyncPool:
    """A ``ThreadPoolExecutor`` that knows how many of its threads are taken."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="flowmonkey")
        self._lock = threading.Lock()
        self.busy = 0
        """Handlers submitted and not finished (running, or queued for a thread). A
        handler whose step timed out still counts until its thread is free again."""
        self.queued_steps = 0
        """Steps waiting for a thread right now."""
        self.queue_waits = 0
        """Steps that had to wait for a thread (since start)."""
        self.queue_timeouts = 0
        """Steps failed with ``HANDLER_QUEUE_TIMEOUT`` (since start)."""

    def stats(self) -> dict[str, int]:
        """The counters above, for health endpoints and logs."""
        return {
            "threads": self.threads,
            "busy": self.busy,
            "queued_steps": self.queued_steps,
            "queue_waits": self.queue_waits,
            "queue_timeouts": self.queue_timeouts,
        }

    def _finished(self, _: Future[Any]) -> None:
        with self._lock:
            self.busy -= 1

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
        """Run ``fn(arg)`` on a pool thread; what it raises comes back as a ``Raised``."""
        with self._lock:
            self.busy += 1
        future = self.executor.submit(_guarded, fn, arg)
        future.add_done_callback(self._finished)
        return future

    async def start(
        self, fn: Callable[[Any], Any], arg: Any, *, queue_timeout: float, what: str
    ) -> asyncio.Future[Any] | Result:
        """Submit ``fn(arg)`` and return once it has started (the future of its value, or
        of a ``Raised``),
        or a ``HANDLER_QUEUE_TIMEOUT`` failure when no thread took it within
        ``queue_timeout`` seconds (it then never runs)."""
        if self.busy < self.threads:
            # A thread is free: the handler starts now (no need to hear it say so).
            return asyncio.wrap_future(self.submit(fn, arg))
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()

        def call(value: Any) -> Any:
            loop.call_soon_threadsafe(_set, started)
            return fn(value)

        future = self.submit(call, arg)
        self.queued_steps += 1
        self.queue_waits += 1
        log.info(
            "%s waits for a sync-handler thread (%d of %d busy)", what, self.busy, self.threads,
            extra={"sync_threads_busy": self.busy, "sync_steps_queued": self.queued_steps},
        )  # fmt: skip
        try:
            await asyncio.wait((started,), timeout=queue_timeout)
        except BaseException:
            future.cancel()  # a real cancellation: a handler that has not started never will
            raise
        finally:
            self.queued_steps -= 1
        if not started.done() and future.cancel():
            self.queue_timeouts += 1
            log.warning(
                "%s found no free sync-handler thread within %gs; it did not run",
                what, queue_timeout, extra={"sync_threads_busy": self.busy},
            )  # fmt: skip
            return Result.failure(
                HANDLER_QUEUE_TIMEOUT,
                f"no sync-handler thread became free within {queue_timeout:g}s "
                f"({self.threads} threads, all busy); the handler did not run",
            )
        return asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Stop the threads (queued handlers are dropped)."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

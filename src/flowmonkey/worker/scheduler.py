"""The worker's background loops: the scheduler (due timers, retries, timeouts), the
reaper (stale runs), lease heartbeats and the wake listener, plus ``Outage``, which keeps
an outage of the store to two log lines per loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.coordination.base import WakeSignaler

__all__ = [
    "Outage",
    "listen_for_wakes",
    "one_line",
    "run_every",
    "wait_or_timeout",
]


def one_line(exc: BaseException) -> str:
    """An error message on one line (driver messages often add hint lines)."""
    return " ".join(str(exc).split()) or type(exc).__name__


async def wait_or_timeout(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``event``; True if it is set."""
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(timeout, 0.0)):
            await event.wait()
    return event.is_set()


class Outage:
    """Logs the first failure of a loop as a warning and its recovery once, so an
    unreachable store produces two log lines per loop instead of one per attempt."""

    def __init__(self, log: logging.Logger, what: str, extra: Mapping[str, Any]) -> None:
        self._log = log
        self._what = what
        self._extra = dict(extra)
        self.failing = False
        self.failures = 0

    def failed(self, exc: BaseException, retry_in: float) -> None:
        """Record a failed attempt."""
        self.failures += 1
        level = logging.DEBUG if self.failing else logging.WARNING
        message = one_line(exc)
        self._log.log(
            level, "%s failed (retrying in %.1fs): %s", self._what, retry_in, message,
            extra={**self._extra, "error": message, "attempt": self.failures},
        )  # fmt: skip
        self.failing = True

    def succeeded(self) -> None:
        """Record a successful attempt (logs once after an outage)."""
        if self.failing:
            self._log.info(
                "%s works again after %d failed attempt(s)", self._what, self.failures,
                extra=self._extra,
            )  # fmt: skip
        self.failing = False
        self.failures = 0


async def run_every(
    what: str,
    interval: float,
    action: Callable[[], Awaitable[list[str]]],
    *,
    stopping: asyncio.Event,
    log: logging.Logger,
    extra: Mapping[str, Any],
    on_work: Callable[[list[str]], None] | None = None,
    batch: int | None = None,
    max_backoff: float = 30.0,
) -> None:
    """Call ``action`` every ``interval`` seconds until ``stopping`` is set.

    ``action`` returns the ids it made runnable; they go to ``on_work`` (the claim loop
    is kicked so they start at once). A result of ``batch`` ids or more means more may
    be due, so the next call follows immediately. Failures are logged (see ``Outage``)
    and retried with capped exponential backoff; the loop itself never dies of them.
    """
    outage = Outage(log, what, extra)
    delay = interval
    while not stopping.is_set():
        try:
            ids = await action()
        except Exception as exc:
            delay = min(max(delay * 2, interval), max_backoff)
            outage.failed(exc, delay)
        else:
            outage.succeeded()
            delay = interval
            if ids:
                log.debug("%s: %d execution(s) runnable", what, len(ids),
                          extra={**extra, "count": len(ids)})  # fmt: skip
                if on_work is not None:
                    on_work(ids)
                if batch is not None and len(ids) >= batch:
                    continue
        await wait_or_timeout(stopping, delay)


async def listen_for_wakes(
    signaler: WakeSignaler,
    poll_interval: float,
    on_wake: Callable[[list[str]], None],
    *,
    log: logging.Logger,
    extra: Mapping[str, Any],
    max_backoff: float = 30.0,
    on_ready: Callable[[], None] | None = None,
    stopping: asyncio.Event | None = None,
) -> None:
    """Start ``signaler`` (retrying; then ``on_ready()``) and call ``on_wake`` with
    announced ids until ``stopping`` is set (within ``poll_interval``) or the task is
    cancelled. Polling covers any gap, so failures only log.

    ``stopping`` is what ends it for sure: on Python 3.11 ``asyncio.wait_for`` (which a
    signaler's ``wait`` may use) can swallow a cancellation that arrives as its timeout
    fires, and this loop then went on forever, so a worker never exited on SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = stopping if stopping is not None else asyncio.Event()
    delay = poll_interval
    outage = Outage(log, "wake signal listener", extra)
    while not stop.is_set():
        try:
            await signaler.start()
            break
        except Exception as exc:
            delay = min(delay * 2, max_backoff)
            outage.failed(exc, delay)
            await wait_or_timeout(stop, delay)
    if stop.is_set():
        return
    outage.succeeded()
    if on_ready is not None:
        on_ready()
    while not stop.is_set():
        began = loop.time()
        try:
            ids = await signaler.wait(poll_interval)
        except Exception as exc:
            outage.failed(exc, poll_interval)
            await wait_or_timeout(stop, poll_interval)
            continue
        outage.succeeded()
        # An early empty return means "poll now" (e.g. after a reconnect, when
        # announcements may have been missed).
        if ids or loop.time() - began < poll_interval * 0.9:
            on_wake(ids)

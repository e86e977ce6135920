"""``EventBus``: delivers events to listeners; a listener that raises never breaks a step."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from flowmonkey.model.events import Event

__all__ = ["EventBus", "Listener", "call_maybe_async"]

Listener = Callable[[Event], Any]
log = logging.getLogger("flowmonkey.events")


class EventBus:
    """Listeners by event type (``"*"`` for all). Sync and async listeners both work."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def on(self, event_type: str, listener: Listener) -> Callable[[], None]:
        """Subscribe; returns a function that unsubscribes."""
        self._listeners.setdefault(event_type, []).append(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(event_type, [])
            if listener in listeners:
                listeners.remove(listener)
                if not listeners:
                    del self._listeners[event_type]

        return unsubscribe

    @property
    def active(self) -> bool:
        """True when anyone listens (lets the engine skip work on the hot path)."""
        return bool(self._listeners)

    def wants(self, event_type: str) -> bool:
        """True when someone listens to ``event_type`` (or ``"*"``)."""
        return event_type in self._listeners or "*" in self._listeners

    def emit(self, events: Iterable[Event]) -> None:
        """Deliver events in order: specific listeners first, then ``"*"``."""
        if not self._listeners:
            return
        for event in events:
            for key in (event.type, "*"):
                for listener in tuple(self._listeners.get(key, ())):
                    self._call(listener, event)

    def _call(self, listener: Listener, event: Event) -> None:
        try:
            out = listener(event)
        except Exception:
            log.exception("event listener %r failed on %s", listener, event.type)
            return
        if inspect.isawaitable(out):
            task = asyncio.ensure_future(_guard(out, listener, event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for async listeners still running (used by ``close`` and tests)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)


async def _guard(awaitable: Awaitable[Any], listener: Listener, event: Event) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("async event listener %r failed on %s", listener, event.type)


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async callable."""
    out = fn(*args)
    if inspect.isawaitable(out):
        return await out
    return out

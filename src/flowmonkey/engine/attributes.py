"""``RuntimeAttributes``: the ``Engine``'s public attributes (``store``, ``options``,
``clock``...), kept as they always were but held by its ``Runtime``.

A base class of ``Engine`` of its own so the facade's module holds operations only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flowmonkey.clock import Clock
from flowmonkey.engine.bus import EventBus
from flowmonkey.engine.commits import CommitBatcher
from flowmonkey.engine.options import EngineOptions
from flowmonkey.engine.runtime import Runtime
from flowmonkey.engine.sync_pool import SyncPool
from flowmonkey.engine.table_cache import TableCache
from flowmonkey.engine.tables import Tables
from flowmonkey.stores.base import Store

if TYPE_CHECKING:
    from flowmonkey.definitions.registry import FlowRegistry
    from flowmonkey.handlers.registry import HandlerRegistry
    from flowmonkey.handlers.standard.services import StandardServices

__all__ = ["RuntimeAttributes"]


class RuntimeAttributes:
    """Properties over ``self.runtime`` (set by the subclass's ``__init__``)."""

    runtime: Runtime

    @property
    def store(self) -> Store:
        """The store every call loads from and commits to."""
        return self.runtime.store

    @store.setter
    def store(self, value: Store) -> None:
        self.runtime.store = value
        self.runtime.tables = TableCache(value)

    @property
    def tables(self) -> Tables:
        """Data tables of the store: create, list, insert, query, export (docs/tables.md)."""
        return Tables(self.runtime)

    @property
    def handlers(self) -> HandlerRegistry:
        """The user handlers (built-in step types come after them)."""
        return self.runtime.handlers

    @handlers.setter
    def handlers(self, value: HandlerRegistry) -> None:
        self.runtime.handlers = value

    @property
    def flows(self) -> FlowRegistry:
        """The registered flows (the store is asked for the ones not registered here)."""
        return self.runtime.flows

    @flows.setter
    def flows(self, value: FlowRegistry) -> None:
        self.runtime.flows = value

    @property
    def options(self) -> EngineOptions:
        """The engine's options (a worker may swap in its own while it runs)."""
        return self.runtime.options

    @options.setter
    def options(self, value: EngineOptions) -> None:
        self.runtime.options = value

    @property
    def clock(self) -> Clock:
        """Where ``now()`` comes from."""
        return self.runtime.clock

    @clock.setter
    def clock(self, value: Clock) -> None:
        self.runtime.clock = value

    @property
    def bus(self) -> EventBus:
        """Delivers events to listeners (``on``)."""
        return self.runtime.bus

    @property
    def owner(self) -> str:
        """Lease owner prefix of this engine (a worker sets its own worker id)."""
        return self.runtime.owner

    @owner.setter
    def owner(self, value: str) -> None:
        self.runtime.owner = value

    @property
    def wake_signaler(self) -> Any:
        """Optional ``WakeSignaler``: told when an execution becomes runnable."""
        return self.runtime.wake_signaler

    @wake_signaler.setter
    def wake_signaler(self, value: Any) -> None:
        self.runtime.wake_signaler = value

    @property
    def services(self) -> StandardServices:
        """What the standard handlers share: one HTTP client (closed with the engine),
        the secret provider, ``base_url`` (see docs/handlers/README.md)."""
        return self.runtime.services

    @property
    def committer(self) -> CommitBatcher:
        """Groups the step commits of concurrent executions (see ``commits.py``)."""
        return self.runtime.committer

    @property
    def sync_pool(self) -> ThreadPoolExecutor:
        """The bounded thread pool that runs sync handlers."""
        return self.runtime.sync_pool

    @property
    def sync_handlers(self) -> SyncPool:
        """The sync-handler pool's accounting: busy threads, steps queued for a thread
        (``stats()``), queue waits and ``HANDLER_QUEUE_TIMEOUT`` failures."""
        return self.runtime.sync_handlers

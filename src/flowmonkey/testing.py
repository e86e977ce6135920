"""Test helpers: ``FakeClock``, ``TestHarness`` and an engine factory over ``MemoryStore``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from flowmonkey.clock import FakeClock
from flowmonkey.definitions.registry import FlowRegistry
from flowmonkey.engine.engine import Engine
from flowmonkey.engine.options import EngineOptions
from flowmonkey.handlers.registry import HandlerRegistry
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.flow import Flow
from flowmonkey.model.records import Task
from flowmonkey.stores.base import Store
from flowmonkey.stores.memory import MemoryStore

__all__ = ["FakeClock", "TestHarness", "make_engine"]


def make_engine(
    handlers: Iterable[Any] = (),
    flows: Iterable[Flow] = (),
    *,
    store: Store | None = None,
    clock: FakeClock | None = None,
    options: EngineOptions | None = None,
) -> Engine:
    """An ``Engine`` over a ``MemoryStore`` (by default) with a ``FakeClock``."""
    registry = HandlerRegistry()
    for h in handlers:
        registry.register(h)
    flow_registry = FlowRegistry()
    for f in flows:
        flow_registry.register(f)
    return Engine(
        store if store is not None else MemoryStore(),
        registry,
        flow_registry,
        options=options,
        clock=clock if clock is not None else FakeClock(),
    )


class TestHarness:
    """Runs flows in memory with a fake clock and records every event.

    ``run`` drives an execution to completion or to a wait; ``advance`` moves time and
    fires due timers; the ``assert_*`` helpers give clear failure messages.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        handlers: Iterable[Any] = (),
        flows: Iterable[Flow] = (),
        *,
        clock: FakeClock | None = None,
        store: Store | None = None,
        options: EngineOptions | None = None,
    ) -> None:
        self.clock = clock if clock is not None else FakeClock()
        self.engine = make_engine(handlers, flows, store=store, clock=self.clock, options=options)
        self.events: list[Event] = []
        self.engine.on("*", self.events.append)

    @property
    def store(self) -> Store:
        """The engine's store."""
        return self.engine.store

    async def __aenter__(self) -> TestHarness:
        await self.engine.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.close()

    async def run(
        self, flow_id: str, context: Mapping[str, Any] | None = None, **create: Any
    ) -> Execution:
        """Create and run an execution to completion or to a wait; returns it."""
        result = await self.engine.start(flow_id, context, **create)
        return result.execution

    async def resume(
        self, execution_id: str, data: Any = None, *, token: str | None = None
    ) -> Execution:
        """Resume a waiting execution (``token``: a resume token the step created, checked
        like ``Engine.resume`` does)."""
        return (await self.engine.resume(execution_id, data, token=token)).execution

    async def signal(self, execution_id: str, step_id: str, port: str | None = None,
                     payload: Any = None) -> Execution:  # fmt: skip
        """Signal a waiting execution."""
        return (await self.engine.signal(execution_id, step_id, port, payload)).execution

    async def complete_task(
        self,
        task_id: str,
        port: str | None = None,
        output: Any = None,
        user_id: str | None = None,
    ) -> Execution:
        """Complete a user task (validated against its form) and continue its execution;
        returns the execution (see ``Engine.complete_task``)."""
        result = await self.engine.complete_task(task_id, port=port, output=output, user_id=user_id)
        return result.execution

    async def tasks(self, **filters: Any) -> list[Task]:
        """User tasks, filtered like ``Engine.tasks`` (``assignee``, ``role``, ``status``
        (default ``"pending"``), ``tenant_id``, ``execution_id``, ``limit``)."""
        return await self.engine.tasks(**filters)

    async def advance(self, delta: timedelta | float) -> int:
        """Move the clock (a ``timedelta`` or seconds), fire due timers, and run everything
        that became runnable; returns the number of executions driven (as
        ``run_until_idle``)."""
        self.clock.advance(delta)
        return await self.engine.run_until_idle()

    async def run_until_idle(self) -> int:
        """Run every runnable execution (children included)."""
        return await self.engine.run_until_idle()

    async def get(self, execution_id: str) -> Execution:
        """Load an execution (AssertionError if missing)."""
        execution = await self.engine.get(execution_id)
        assert execution is not None, f"execution {execution_id} not found"
        return execution

    def events_for(self, execution_id: str) -> list[Event]:
        """Events delivered for one execution, in order."""
        return [e for e in self.events if e.execution_id == execution_id]

    def event_types(self, execution_id: str) -> list[str]:
        """Types of the events delivered for one execution."""
        return [e.type for e in self.events_for(execution_id)]

    @staticmethod
    def assert_completed(execution: Execution) -> None:
        """Fail unless completed."""
        assert execution.status is ExecutionStatus.COMPLETED, (
            f"expected completed, got {execution.status} (error: {execution.error})"
        )

    @staticmethod
    def assert_failed(execution: Execution, code: str | None = None) -> None:
        """Fail unless failed (with ``code`` when given)."""
        assert execution.status is ExecutionStatus.FAILED, (
            f"expected failed, got {execution.status}"
        )
        if code is not None:
            assert execution.error is not None and execution.error.code == code, (
                f"expected error {code}, got {execution.error}"
            )

    @staticmethod
    def assert_waiting(execution: Execution, step_id: str | None = None) -> None:
        """Fail unless waiting (at ``step_id`` when given)."""
        assert execution.status is ExecutionStatus.WAITING, (
            f"expected waiting, got {execution.status} (error: {execution.error})"
        )
        if step_id is not None:
            assert execution.current_step_id == step_id, (
                f"expected to wait at {step_id}, waiting at {execution.current_step_id}"
            )

    @staticmethod
    def assert_cancelled(execution: Execution) -> None:
        """Fail unless cancelled."""
        assert execution.status is ExecutionStatus.CANCELLED, (
            f"expected cancelled, got {execution.status}"
        )

    @staticmethod
    def assert_context(execution: Execution, expected: Mapping[str, Any]) -> None:
        """Fail unless every key of ``expected`` has that value in the context."""
        for key, value in expected.items():
            assert key in execution.context, f"context has no key {key!r}"
            assert execution.context[key] == value, (
                f"context[{key!r}] == {execution.context[key]!r}, expected {value!r}"
            )

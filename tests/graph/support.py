"""Handlers, flows and helpers shared by the graph-feature tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowmonkey import Result, handler
from flowmonkey.engine.engine import Engine
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution


@handler("noop")
async def noop(ctx: Any) -> Result:
    """Success without output."""
    return Result.success()


@handler("echo")
async def echo(ctx: Any) -> Result:
    """Success with the resolved input."""
    return Result.success(ctx.input)


@handler("boom")
async def boom(ctx: Any) -> Result:
    """A non-retryable failure ``BOOM``."""
    return Result.failure("BOOM", "it broke", retryable=False)


def recorder(type_: str, result: Callable[[Any], Any] | None = None) -> tuple[Any, list[Any]]:
    """A handler of ``type_`` that records every ctx it gets (default: success(input))."""
    seen: list[Any] = []

    async def fn(ctx: Any) -> Any:
        seen.append(ctx)
        return result(ctx) if result is not None else Result.success(ctx.input)

    return handler(type_)(fn), seen


async def stored(engine: Engine, execution_id: str) -> Execution:
    """The execution as stored (AssertionError if missing)."""
    execution = await engine.get(execution_id)
    assert execution is not None, f"execution {execution_id} not found"
    return execution


async def events(engine: Engine, execution_id: str, type_: str | None = None) -> list[Event]:
    """Persisted events of an execution (of one type when given)."""
    return [e for e in await engine.events(execution_id) if type_ is None or e.type == type_]


async def event_types(engine: Engine, execution_id: str) -> list[str]:
    """Types of the persisted events, in order."""
    return [e.type for e in await engine.events(execution_id)]


async def snapshot(engine: Engine, execution_id: str) -> tuple[dict[str, Any], list[Any]]:
    """Everything stored about an execution (dict form + events + its tasks)."""
    execution = await stored(engine, execution_id)
    evs = [e.to_dict() for e in await engine.events(execution_id)]
    tasks = await engine.tasks(execution_id=execution_id, status=None)
    return execution.to_dict(), [evs, sorted((t.id, t.status) for t in tasks)]

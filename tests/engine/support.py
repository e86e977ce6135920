"""Handlers, flows and assertions shared by the engine tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowmonkey import FlowBuilder, FlowRegistry, Result, handler
from flowmonkey.engine.engine import Engine
from flowmonkey.model.flow import Flow


@handler("echo")
async def echo(ctx: Any) -> Result:
    """Success with the resolved input as output."""
    return Result.success(ctx.input)


@handler("noop")
async def noop(ctx: Any) -> Result:
    """Success without output."""
    return Result.success()


@handler("wait")
async def wait_forever(ctx: Any) -> Result:
    """Wait for resume/signal (no wake time)."""
    return Result.wait(reason="waiting for input")


@handler("boom")
async def boom(ctx: Any) -> Result:
    """Fail (retryable) with code BOOM."""
    return Result.failure("BOOM", "it broke", details={"n": 1})


def capture(
    type_: str, *, result: Callable[[Any], Any] | None = None, sync: bool = False
) -> tuple[Any, list[Any]]:
    """A handler of ``type_`` that records every ctx it is called with."""
    seen: list[Any] = []

    if sync:

        def fn(ctx: Any) -> Any:
            seen.append(ctx)
            return result(ctx) if result is not None else Result.success(ctx.input)

    else:

        async def fn(ctx: Any) -> Any:
            seen.append(ctx)
            return result(ctx) if result is not None else Result.success(ctx.input)

    return handler(type_)(fn), seen


def one_step(step_type: str, *, flow_id: str = "f", **step: Any) -> Flow:
    """A flow with one step ``s`` of ``step_type``."""
    return FlowBuilder(flow_id).step("s", step_type, **step).build()


class UncheckedFlows(FlowRegistry):
    """A registry that skips validation, to reach run-time checks of broken flows."""

    def validate(self, flow: Flow, handlers: Any = None) -> list[Any]:
        return []


async def state(engine: Engine, execution_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Everything stored about an execution: its full dict and its event log."""
    execution = await engine.get(execution_id)
    assert execution is not None
    events = await engine.events(execution_id)
    return execution.to_dict(), [e.to_dict() for e in events]


async def event_types(engine: Engine, execution_id: str) -> list[str]:
    """Types of the persisted events of an execution, in order."""
    return [e.type for e in await engine.events(execution_id)]

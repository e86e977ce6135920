"""Simulation: run a flow with passthrough handlers and scripted outcomes, in memory.

For editors and tests: it shows the path a flow takes for some input without calling any
real handler and without touching the engine's store.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flowmonkey.clock import FakeClock
from flowmonkey.engine.lookup import get_flow
from flowmonkey.engine.results import SimulationResult
from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.registry import HandlerRegistry
from flowmonkey.model.execution import ExecutionStatus, TokenStatus
from flowmonkey.model.result import Result

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.stores.base import Store

__all__ = ["simulate"]

Outcome = Result | Callable[..., Any]
EngineFactory = Callable[..., Any]
"""Builds the private engine of a simulation: ``Engine.simulate`` passes its own class, as
this module sits below ``Engine`` and never imports it."""


async def _outcome(value: Outcome, ctx: HandlerContext) -> Any:
    if isinstance(value, Result):
        return value
    out = value(ctx)
    if inspect.isawaitable(out):
        out = await out
    return out


async def simulate(
    engine: Runtime,
    make_engine: EngineFactory,
    store: Store,
    flow_id: str,
    context: Mapping[str, Any] | None,
    *,
    outcomes: Mapping[str, Outcome] | None,
    signals: Mapping[str, Any] | None,
    version: str | None,
    max_steps: int,
) -> SimulationResult:
    """See ``Engine.simulate``.

    ``outcomes`` maps a step id (first) or a handler type to a ``Result`` or a callable
    ``(ctx) -> Result``; a scripted outcome also replaces a built-in wait step. Waits
    without one are satisfied by ``signals[step_id]`` (``{"port": ..., "payload": ...}``
    or a bare payload); timers and retries fire by moving a private fake clock;
    anything else is left waiting.
    """
    flow = await get_flow(engine, flow_id, version)
    scripted = dict(outcomes or {})
    clock = FakeClock(engine.clock.now())
    sim: Any
    handlers = HandlerRegistry()
    step_types = {s.type for s in flow.steps.values()}

    def make(step_type: str) -> Callable[[HandlerContext], Any]:
        async def run_step(ctx: HandlerContext) -> Any:
            for key in (ctx.step.id, step_type):
                if key in scripted:
                    return await _outcome(scripted[key], ctx)
            builtin = sim.runtime.builtins.get(step_type)
            if builtin is not None:
                return await builtin.fn(ctx)
            return Result.success()

        return run_step

    for step_type in step_types:
        if step_type in ("parallel", "join"):
            continue
        handlers.register(make(step_type), type=step_type)
    sim = make_engine(
        store,
        handlers,
        engine.flows,
        options=replace(
            engine.options,
            mode="production",
            automatic_recovery=False,
            max_steps=max_steps,
            load_flows_from_store=False,
        ),
        clock=clock,
    )
    path: list[str] = []
    events: list[Any] = []
    sim.on("*", events.append)
    sim.on("step.started", lambda e: path.append(str(e.data["step_id"])))
    pending_signals = dict(signals or {})
    async with sim:
        result = await sim.start(flow.id, dict(context or {}), version=flow.version)
        execution_id = result.execution.id
        for _ in range(max_steps):
            await sim.run_until_idle()
            current = await sim.get(execution_id)
            assert current is not None
            if current.status is not ExecutionStatus.WAITING:
                break
            waiting = [t for t in current.tokens if t.status is TokenStatus.WAITING]
            signalled = next((t for t in waiting if t.step_id in pending_signals), None)
            if signalled is not None and signalled.step_id is not None:
                spec = pending_signals.pop(signalled.step_id)
                if isinstance(spec, Mapping) and ("port" in spec or "payload" in spec):
                    await sim.signal(
                        execution_id, signalled.step_id, spec.get("port"), spec.get("payload")
                    )
                else:
                    await sim.signal(execution_id, signalled.step_id, None, spec)
                continue
            wakes = [t.wake_at for t in waiting if t.wake_at is not None]
            if not wakes:
                break
            clock.set(max(min(wakes), clock.now()))
        final = await sim.get(execution_id)
        assert final is not None
    return SimulationResult(
        status=final.status, path=path, context=final.context, execution=final, events=events
    )

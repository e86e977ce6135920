"""What the engine runs: flows (registry first, then the store) and step handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowmonkey import errors
from flowmonkey.model.flow import Flow, Step

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine
    from flowmonkey.handlers.registry import RegisteredHandler

__all__ = [
    "TOKEN_MOVES",
    "get_flow",
    "load_flows_from_store",
    "missing_handlers",
    "resolve_handler",
    "runnable_flows",
    "save_flow",
]

TOKEN_MOVES = frozenset({"parallel", "join"})
"""Step types the engine moves tokens for itself (no handler needed)."""


async def get_flow(engine: Engine, flow_id: str, version: str | None) -> Flow:
    """See ``Engine.get_flow``."""
    flow = engine.flows.get(flow_id, version)
    if flow is not None:
        return flow
    stored = await engine.store.get_flow(flow_id, version)
    if stored is None:
        raise errors.FlowNotFound(flow_id, version)
    flow = Flow.from_dict(stored.definition)
    engine.flows.register(flow)
    return flow


async def load_flows_from_store(engine: Engine) -> int:
    """See ``Engine.load_flows_from_store``."""
    count = 0
    for stored in await engine.store.list_flows():
        for version in await engine.store.flow_versions(stored.flow_id):
            if engine.flows.get(stored.flow_id, version) is not None:
                continue
            found = await engine.store.get_flow(stored.flow_id, version)
            if found is not None:
                engine.flows.register(Flow.from_dict(found.definition))
                count += 1
    return count


async def save_flow(engine: Engine, flow: Flow) -> bool:
    """See ``Engine.save_flow`` (the engine must be initialized)."""
    from flowmonkey.definitions.validate import raise_for_issues

    raise_for_issues(flow.id, engine.flows.validate(flow))
    known = engine.flows.get(flow.id, flow.version)
    if known is not None and known.version == flow.version and known != flow:
        engine.flows.register(flow)  # raises: versions are immutable
    saved = await engine.store.save_flow(flow.to_dict(), now=engine.clock.now())
    engine.flows.register(flow)
    return saved


def missing_handlers(engine: Engine, flow: Flow) -> list[str]:
    """Step types of ``flow`` this engine has no handler for (sorted)."""
    return sorted(
        {
            step.type
            for step in flow.steps.values()
            if step.type not in TOKEN_MOVES and resolve_handler(engine, step) is None
        }
    )


def runnable_flows(engine: Engine) -> frozenset[tuple[str, str]]:
    """See ``Engine.runnable_flows``."""
    return frozenset(
        (flow.id, flow.version)
        for flow in engine.flows.flows()
        if not missing_handlers(engine, flow)
    )


def resolve_handler(engine: Engine, step: Step) -> RegisteredHandler | None:
    """See ``Engine.resolve_handler``."""
    handler = engine.handlers.get(step.type)
    if handler is None:
        handler = engine._builtins.get(step.type)
    elif engine.options.mode == "simulation" and step.type not in engine._builtins:
        from flowmonkey.engine.simulation import passthrough

        return passthrough(step.type)
    if handler is None and engine.options.mode == "simulation":
        from flowmonkey.engine.simulation import passthrough

        return passthrough(step.type)
    return handler

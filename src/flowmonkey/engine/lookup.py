"""What the engine runs: flows (registry first, then the store) and step handlers
(user handlers, then built-in step types; passthrough ones in simulation mode)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flowmonkey import errors
from flowmonkey.handlers.base import HandlerMetadata
from flowmonkey.handlers.registry import RegisteredHandler
from flowmonkey.model.flow import Flow, Step
from flowmonkey.model.result import Result

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime
    from flowmonkey.handlers.context import HandlerContext

log = logging.getLogger("flowmonkey.engine")

__all__ = [
    "TOKEN_MOVES",
    "get_flow",
    "load_flows_from_store",
    "missing_handlers",
    "passthrough",
    "resolve_handler",
    "runnable_flows",
    "save_flow",
]

TOKEN_MOVES = frozenset({"parallel", "join"})
"""Step types the engine moves tokens for itself (no handler needed)."""


async def get_flow(engine: Runtime, flow_id: str, version: str | None) -> Flow:
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


async def load_flows_from_store(engine: Runtime, *, strict: bool = True) -> int:
    """See ``Engine.load_flows_from_store``. ``strict=False`` skips (and logs) a stored
    version this process cannot register instead of raising: a worker looking for what
    it can run must not stop at one bad definition."""
    count = 0
    for stored in await engine.store.list_flows():
        for version in await engine.store.flow_versions(stored.flow_id):
            if engine.flows.get(stored.flow_id, version) is not None:
                continue
            found = await engine.store.get_flow(stored.flow_id, version)
            if found is None:
                continue
            try:
                engine.flows.register(Flow.from_dict(found.definition))
            except (errors.FlowValidationError, ValueError, TypeError) as exc:
                if strict:
                    raise
                log.warning("stored flow %s@%s not loaded: %s", stored.flow_id, version, exc)
                continue
            count += 1
    return count


async def save_flow(engine: Runtime, flow: Flow) -> bool:
    """See ``Engine.save_flow`` (the engine must be initialized)."""
    from flowmonkey.definitions.validate import raise_for_issues  # loads jsonschema

    issues = engine.flows.validate(flow)
    issues += await engine.tables.missing(flow)  # pipes into tables that do not exist
    raise_for_issues(flow.id, issues)
    known = engine.flows.get(flow.id, flow.version)
    if known is not None and known.version == flow.version and known != flow:
        engine.flows.register(flow)  # raises: versions are immutable
    saved = await engine.store.save_flow(flow.to_dict(), now=engine.clock.now())
    engine.flows.register(flow)
    return saved


def missing_handlers(engine: Runtime, flow: Flow) -> list[str]:
    """Step types of ``flow`` this engine has no handler for (sorted)."""
    return sorted(
        {
            step.type
            for step in flow.steps.values()
            if step.type not in TOKEN_MOVES and resolve_handler(engine, step) is None
        }
    )


def runnable_flows(engine: Runtime) -> frozenset[tuple[str, str]]:
    """See ``Engine.runnable_flows`` (cached on the runtime until a flow or handler
    registers)."""
    if engine.runnable is None:
        engine.runnable = frozenset(
            (flow.id, flow.version)
            for flow in engine.flows.flows()
            if not missing_handlers(engine, flow)
        )
    return engine.runnable


def resolve_handler(engine: Runtime, step: Step) -> RegisteredHandler | None:
    """See ``Engine.resolve_handler``."""
    handler = engine.handlers.get(step.type)
    if handler is None:
        handler = engine.builtins.get(step.type)
    elif engine.options.mode == "simulation" and step.type not in engine.builtins:
        return passthrough(step.type)
    if handler is None and engine.options.mode == "simulation":
        return passthrough(step.type)
    return handler


async def _succeed(ctx: HandlerContext) -> Result:
    return Result.success()


def passthrough(step_type: str) -> RegisteredHandler:
    """A handler that succeeds with no output (what simulation mode runs)."""
    return RegisteredHandler(
        type=step_type,
        fn=_succeed,
        is_async=True,
        metadata=HandlerMetadata(type=step_type, name=step_type, description="passthrough"),
        timeout=None,
    )

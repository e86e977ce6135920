"""Helpers the standard handlers share: template scope, the engine's services, codes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar

from flowmonkey.durations import parse_duration
from flowmonkey.handlers.base import Handler, HandlerMetadata
from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.standard.services import StandardServices
from flowmonkey.model.templates import render_template

__all__ = [
    "DURATION_SCHEMA",
    "INPUT_ERROR",
    "StandardHandler",
    "duration_problems",
    "render",
    "scope",
    "seconds",
    "services_of",
]

INPUT_ERROR = "INPUT_ERROR"
"""A config that passed the schema but cannot be used (a rendered URL that is not one)."""

DURATION_SCHEMA: dict[str, Any] = {
    "oneOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "minLength": 1}]
}
"""Milliseconds, or a string like ``"500ms"``, ``"30s"``, ``"5m"`` (as everywhere)."""


def scope(ctx: HandlerContext) -> dict[str, Any]:
    """What ``${path}`` templates in a standard handler's config see: ``input``, ``context``."""
    return {"input": ctx.input, "context": ctx.context}


def render(template: Any, ctx: HandlerContext, data: Mapping[str, Any] | None = None) -> Any:
    """Render ``${input.x}`` / ``${context.y}`` templates (SEMANTICS.md rules)."""
    return render_template(template, data if data is not None else scope(ctx))


def services_of(ctx: HandlerContext) -> StandardServices:
    """The engine's ``StandardServices`` (a context outside an engine gets defaults)."""
    found = ctx.services
    if not isinstance(found, StandardServices):
        raise RuntimeError("this engine provides no StandardServices")
    return found


def seconds(value: Any, default: float) -> float:
    """A duration of the config (milliseconds as a number, or ``"30s"``) in seconds.

    Raises:
        ValueError: not a duration.
    """
    if value is None:
        return default
    return parse_duration(value, field="timeout").total_seconds()


def duration_problems(config: Mapping[str, Any], *keys: str) -> list[str]:
    """Static check of duration fields (for ``validate_config``)."""
    problems = []
    for key in keys:
        if config.get(key) is not None:
            try:
                if parse_duration(config[key], field=key) <= timedelta(0):
                    problems.append(f"{key}: must be positive")
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
    return problems


class StandardHandler(Handler):
    """Base of the standard handlers: an explicit JSON Schema for the config."""

    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    category = "standard"

    def describe(self) -> HandlerMetadata:
        """The class metadata with ``config_schema`` (a dict, not a dataclass)."""
        return replace(super().describe(), config_schema=self.config_schema)

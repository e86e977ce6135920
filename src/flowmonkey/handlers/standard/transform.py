"""``transform``: a JMESPath expression over ``{"input", "context"}``; its value is the output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import jmespath
import jmespath.exceptions

from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.standard.common import StandardHandler, scope
from flowmonkey.model.result import Result

__all__ = ["TRANSFORM_ERROR", "TransformConfig", "TransformHandler"]

TRANSFORM_ERROR = "TRANSFORM_ERROR"


@dataclass(frozen=True, slots=True)
class TransformConfig:
    """The config of a ``transform`` step."""

    expression: str
    """JMESPath, e.g. ``input.items[?qty > `1`].sku`` or ``{id: context.order.id}``."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TransformConfig:
        """Build from a (schema-checked) config mapping."""
        return cls(expression=config["expression"])


class TransformHandler(StandardHandler):
    """Reshape data with a JMESPath expression (safe: no code is executed)."""

    type = "transform"
    retryable = False
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"expression": {"type": "string", "minLength": 1}},
        "required": ["expression"],
        "additionalProperties": False,
    }

    def __init__(self) -> None:
        # Compiled expressions by text: flows reuse a handful of expressions.
        self._compiled: dict[str, Any] = {}

    def _compile(self, expression: str) -> Any:
        found = self._compiled.get(expression)
        if found is None:
            found = jmespath.compile(expression)
            if len(self._compiled) < 10_000:
                self._compiled[expression] = found
        return found

    def validate_config(self, config: Mapping[str, Any]) -> list[str]:
        """A malformed expression is a validation error, not a run-time failure."""
        try:
            jmespath.compile(config["expression"])
        except jmespath.exceptions.JMESPathError as exc:
            return [f"expression: invalid JMESPath: {_one_line(exc)}"]
        return []

    async def execute(self, ctx: HandlerContext) -> Result:
        """Evaluate the expression; ``TRANSFORM_ERROR`` when it cannot be evaluated."""
        cfg = TransformConfig.from_config(ctx.config)
        try:
            value = self._compile(cfg.expression).search(scope(ctx))
        except jmespath.exceptions.JMESPathError as exc:
            return Result.failure(TRANSFORM_ERROR, _one_line(exc), retryable=False)
        except (TypeError, ValueError) as exc:
            return Result.failure(TRANSFORM_ERROR, f"{type(exc).__name__}: {exc}", retryable=False)
        return Result.success(value)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())

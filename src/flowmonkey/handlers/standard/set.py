"""``set``: template-rendered values as the step's output (constants, renames)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.standard.common import INPUT_ERROR, StandardHandler, render
from flowmonkey.model.result import Result

__all__ = ["SetConfig", "SetHandler"]


@dataclass(frozen=True, slots=True)
class SetConfig:
    """The config of a ``set`` step."""

    values: dict[str, Any]
    """Output keys to values; strings may hold ``${input.x}`` / ``${context.y}``."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SetConfig:
        """Build from a (schema-checked) config mapping."""
        return cls(values=dict(config["values"]))


class SetHandler(StandardHandler):
    """Put constants and values taken from the input or the context into the output."""

    type = "set"
    retryable = False
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"values": {"type": "object"}},
        "required": ["values"],
        "additionalProperties": False,
    }

    async def execute(self, ctx: HandlerContext) -> Result:
        """Render ``values``; ``INPUT_ERROR`` when the result is not JSON data."""
        cfg = SetConfig.from_config(ctx.config)
        output = render(cfg.values, ctx)
        try:
            orjson.dumps(output)
        except TypeError as exc:
            return Result.failure(INPUT_ERROR, f"values are not JSON data: {exc}", retryable=False)
        return Result.success(output)

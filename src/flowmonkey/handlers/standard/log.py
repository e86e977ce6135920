"""``log``: one structured line through the ``flowmonkey`` logger (never fails)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.standard.common import StandardHandler, render
from flowmonkey.model.result import Result

__all__ = ["LEVELS", "LogConfig", "LogHandler"]

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
LOGGER = "flowmonkey.steps"
"""A child of ``flowmonkey``: configure either to route these lines."""


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The config of a ``log`` step."""

    message: str
    """A template: ``"order ${context.order.id} fetched"``."""
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)
    """Extra structured fields (templates too); attached to the record as ``fields``."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LogConfig:
        """Build from a (schema-checked) config mapping."""
        return cls(
            message=config["message"],
            level=config.get("level", "info"),
            fields=dict(config.get("fields") or {}),
        )


class LogHandler(StandardHandler):
    """Write a structured log line; the output is the line as a dict."""

    type = "log"
    retryable = False
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "level": {"enum": list(LEVELS)},
            "fields": {"type": "object"},
        },
        "required": ["message"],
        "additionalProperties": False,
    }

    def __init__(self) -> None:
        self.logger = logging.getLogger(LOGGER)

    async def execute(self, ctx: HandlerContext) -> Result:
        """Log ``message`` with ``fields`` plus the execution and step ids."""
        cfg = LogConfig.from_config(ctx.config)
        message = render(cfg.message, ctx)
        fields = render(cfg.fields, ctx)
        text = message if isinstance(message, str) else str(message)
        line = {
            "level": cfg.level,
            "message": text,
            "fields": fields,
            "execution_id": ctx.execution_id,
            "step_id": ctx.step.id,
        }
        # The engine redacts secrets from the output; a log line leaves the process at
        # once, so the handler redacts it itself (``ctx.redact``).
        line = ctx.redact(line)
        self.logger.log(
            LEVELS[cfg.level],
            "%s",
            line["message"],
            extra={
                "fields": line["fields"],
                "execution_id": ctx.execution_id,
                "step_id": ctx.step.id,
            },
        )
        return Result.success(line)

"""Handlers of the triggers example: the report step, plus the order-processing example's
handlers (the signed webhook starts that flow). Load it with
``--handlers examples/triggers/handlers.py``."""

from __future__ import annotations

from pathlib import Path

from flowmonkey import HandlerContext, HandlerRegistry, Result, handler

handlers = HandlerRegistry(standard=False)
"""The order-processing handlers (a registry named ``handlers`` is loaded with this
module's own handlers)."""
handlers.register_module(
    Path(__file__).resolve().parent.parent / "order_processing" / "handlers.py"
)


@handler("build-report", description="Summarise the day the schedule fired for.")
async def build_report(ctx: HandlerContext) -> Result:
    """A deterministic stand-in for a real report: names the day and the schedule."""
    data = ctx.input or {}
    return Result.success({"day": str(data.get("day", ""))[:10], "schedule": data.get("schedule")})

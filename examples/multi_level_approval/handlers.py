"""Handlers of the multi-level approval example.

- ``build-approval-chain`` turns the request amount into the list of approval levels
  (``config.thresholds``: a level is needed when the amount is above its ``above``);
- ``record-approval`` records the current level's approval and moves ``chain.next`` to
  the following level (or ``None`` once every level approved);
- ``finalize-request`` writes the outcome.

The user tasks, the ``switch`` and the loop are built-in steps; see flow.yaml. Load this
file with ``--handlers examples/multi_level_approval/handlers.py``.
"""

from __future__ import annotations

from typing import Any

from flowmonkey import HandlerContext, Result, handler


def _chain_view(levels: list[str], approvals: list[dict[str, Any]]) -> dict[str, Any]:
    done = len(approvals)
    return {
        "levels": levels,
        "approvals": approvals,
        "total": len(levels),
        "level": min(done + 1, len(levels)),
        "next": levels[done] if done < len(levels) else None,
    }


@handler("build-approval-chain", description="Decide the approval levels from the amount.")
async def build_chain(ctx: HandlerContext) -> Result:
    """``{"levels": [...], "next": first level, "level": 1, "total": n, ...}``."""
    request = ctx.input
    if not isinstance(request, dict) or not request.get("id"):
        return Result.failure("INVALID_REQUEST", "request has no id", retryable=False)
    try:
        amount = float(request["amount"])
    except (KeyError, TypeError, ValueError):
        return Result.failure("INVALID_REQUEST", "request amount is not a number", False)
    if amount <= 0:
        return Result.failure("INVALID_REQUEST", "amount must be positive", retryable=False)
    thresholds = (ctx.config or {}).get("thresholds") or []
    levels = [str(t["role"]) for t in thresholds if amount > float(t.get("above", 0))]
    return Result.success(_chain_view(levels, []))


@handler("record-approval", description="Record one level's approval; move to the next.")
async def record_approval(ctx: HandlerContext) -> Result:
    """Append ``{"role", "comment"}`` for the level just approved."""
    chain = ctx.input["chain"]
    decision = ctx.input.get("lastDecision") or {}
    approvals = [*chain["approvals"], {"role": chain["next"], "comment": decision.get("comment")}]
    return Result.success(_chain_view(chain["levels"], approvals))


@handler("finalize-request", description="Write the final decision.")
async def finalize_request(ctx: HandlerContext) -> Result:
    """``{"decision", "requestId", "amount", "approvedBy", "rejectedAt"}``."""
    decision = str((ctx.config or {}).get("decision"))
    chain = ctx.input.get("chain") or {}
    request = ctx.input["request"]
    return Result.success(
        {
            "decision": decision,
            "requestId": request["id"],
            "amount": request["amount"],
            "approvedBy": [a["role"] for a in chain.get("approvals", [])],
            "rejectedAt": chain.get("next") if decision == "rejected" else None,
            "comment": (ctx.input.get("lastDecision") or {}).get("comment"),
        }
    )

"""Handlers of the order-tables example (deterministic: tests assert exact rows).

Load it with ``--handlers examples/order_tables/handlers.py``.
"""

from __future__ import annotations

from flowmonkey import HandlerContext, Result, handler

DECLINED_CARD = "4000-0000-0000-0002"


@handler("price-order", description="Total the order's items.")
async def price_order(ctx: HandlerContext) -> Result:
    """``{order_id, customer, card, total}`` from ``{id, customer, card, items}``."""
    order = ctx.input
    total = round(sum(float(i["price"]) * int(i["qty"]) for i in order["items"]), 2)
    return Result.success(
        {"order_id": order["id"], "customer": order["customer"], "card": order["card"],
         "total": total}  # fmt: skip
    )


@handler("charge-card", description="Charge the card (the demo gateway declines one card).")
async def charge_card(ctx: HandlerContext) -> Result:
    """``{payment_id}``; the declined card fails with ``CARD_DECLINED`` (not retried)."""
    priced = ctx.input
    if priced["card"] == DECLINED_CARD:
        return Result.failure("CARD_DECLINED", "the card was declined", retryable=False)
    return Result.success({"payment_id": f"pay-{priced['order_id']}"})

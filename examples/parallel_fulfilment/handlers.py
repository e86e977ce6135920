"""Handlers of the parallel fulfilment example (deterministic: no randomness, no clock).

``reserve-stock``, ``charge-payment`` and ``prepare-label`` run concurrently as the
branches of the ``fulfil`` parallel step; each yields to the event loop once
(``asyncio.sleep(0)``) the way a real I/O call would. ``ship-order`` runs after the
``all-done`` join. Load it with ``--handlers examples/parallel_fulfilment/handlers.py``.
"""

from __future__ import annotations

import asyncio

from flowmonkey import HandlerContext, Result, handler

STOCK: dict[str, int] = {"BOOK-1": 10, "PEN-3": 100, "LAMP-9": 0}
PRICES: dict[str, float] = {"BOOK-1": 12.5, "PEN-3": 3.0, "LAMP-9": 40.0}


@handler("validate-order", description="Check the order and compute its total.")
async def validate_order(ctx: HandlerContext) -> Result:
    """Reject orders without an id, items or address."""
    order = ctx.input
    if not isinstance(order, dict) or not order.get("id") or not order.get("items"):
        return Result.failure("INVALID_ORDER", "order needs an id and items", retryable=False)
    if not order.get("address"):
        return Result.failure("INVALID_ORDER", "order has no address", retryable=False)
    total = sum(PRICES.get(i["sku"], 0.0) * int(i["qty"]) for i in order["items"])
    return Result.success({**order, "total": round(total, 2)})


@handler("reserve-stock", description="Reserve every item (branch 1).")
async def reserve_stock(ctx: HandlerContext) -> Result:
    """Fail ``OUT_OF_STOCK`` (not retryable) when an item is short."""
    await asyncio.sleep(0)
    order = ctx.input
    for item in order["items"]:
        if STOCK.get(item["sku"], 0) < int(item["qty"]):
            return Result.failure("OUT_OF_STOCK", f"{item['sku']} is out of stock", retryable=False)
    return Result.success({"reservationId": f"R-{order['id']}", "items": len(order["items"])})


@handler("charge-payment", description="Charge the order total (branch 2).")
async def charge_payment(ctx: HandlerContext) -> Result:
    """Charge ``order.total``."""
    await asyncio.sleep(0)
    order = ctx.input
    return Result.success({"chargeId": f"CH-{order['id']}", "amount": order["total"]})


@handler("prepare-label", description="Create the shipping label (branch 3).")
async def prepare_label(ctx: HandlerContext) -> Result:
    """A label for the order's address."""
    await asyncio.sleep(0)
    order = ctx.input
    return Result.success({"labelId": f"L-{order['id']}", "to": order["address"]["city"]})


@handler("ship-order", description="Hand the parcel to the carrier (after the join).")
async def ship_order(ctx: HandlerContext) -> Result:
    """Needs all three branch outputs."""
    data = ctx.input
    return Result.success(
        {
            "trackingNumber": f"TRK-{data['order']['id']}",
            "reservationId": data["reservation"]["reservationId"],
            "chargeId": data["payment"]["chargeId"],
            "labelId": data["label"]["labelId"],
        }
    )

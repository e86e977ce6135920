"""Handlers of the order-processing example.

Everything here is deterministic, so tests can assert exact results:

- the stock levels are a constant table;
- the payment gateway is "down" for the first ``failFirstAttempts`` attempts of every
  charge (decided by ``ctx.attempt``, never by randomness or wall-clock time);
- a card number ``"declined"`` is always refused (a non-retryable failure).

Load it with ``--handlers examples/order_processing/handlers.py``.
"""

from __future__ import annotations

from typing import Any

from flowmonkey import HandlerContext, Result, handler

STOCK: dict[str, int] = {"BOOK-1": 10, "PEN-3": 100, "LAMP-9": 0}
"""Units available per SKU in the demo warehouse."""


@handler("validate-order", description="Check the order and compute its total.")
async def validate_order(ctx: HandlerContext) -> Result:
    """Reject orders without an id or items, or with a non-positive quantity."""
    order = ctx.input
    if not isinstance(order, dict) or not order.get("id"):
        return Result.failure("INVALID_ORDER", "order has no id", retryable=False)
    items = order.get("items") or []
    if not items:
        return Result.failure("INVALID_ORDER", f"order {order['id']} has no items", retryable=False)
    for item in items:
        if int(item.get("qty", 0)) <= 0:
            return Result.failure(
                "INVALID_ORDER",
                f"order {order['id']}: quantity of {item.get('sku')} must be positive",
                retryable=False,
            )
    total = round(sum(float(i["price"]) * int(i["qty"]) for i in items), 2)
    return Result.success(
        {
            "orderId": order["id"],
            "items": [{"sku": i["sku"], "qty": int(i["qty"])} for i in items],
            "total": total,
        }
    )


@handler("reserve-stock", description="Reserve every item in the warehouse.")
async def reserve_stock(ctx: HandlerContext) -> Result:
    """Fail with ``OUT_OF_STOCK`` (not retried) when a SKU has too few units."""
    validated: dict[str, Any] = ctx.input
    for item in validated["items"]:
        available = STOCK.get(item["sku"], 0)
        if available < item["qty"]:
            return Result.failure(
                "OUT_OF_STOCK",
                f"{item['sku']}: {item['qty']} wanted, {available} available",
                retryable=False,
            )
    return Result.success(
        {"reservationId": f"R-{validated['orderId']}", "items": validated["items"]}
    )


@handler("charge-payment", description="Charge the customer's card (the gateway is flaky).")
async def charge_payment(ctx: HandlerContext) -> Result:
    """Fail (retryably) on the first ``config.failFirstAttempts`` attempts, then charge."""
    fail_first = int((ctx.config or {}).get("failFirstAttempts", 0))
    order = ctx.input["order"]
    validated = ctx.input["validated"]
    if order.get("card") == "declined":
        return Result.failure(
            "PAYMENT_DECLINED", f"card for order {order['id']} was declined", retryable=False
        )
    if ctx.attempt <= fail_first:
        return Result.failure(
            "GATEWAY_UNAVAILABLE", f"payment gateway timed out (attempt {ctx.attempt})"
        )
    return Result.success(
        {
            "chargeId": f"CH-{validated['orderId']}",
            "amount": validated["total"],
            "attempts": ctx.attempt,
        }
    )


@handler("ship-order", description="Hand the parcel to the carrier.")
async def ship_order(ctx: HandlerContext) -> Result:
    """Create a (fake) shipment for the reserved items."""
    order = ctx.input["order"]
    return Result.success(
        {
            "trackingNumber": f"TRK-{order['id']}",
            "carrier": "demo-post",
            "reservationId": ctx.input["reservation"]["reservationId"],
            "chargeId": ctx.input["payment"]["chargeId"],
        }
    )


@handler("notify-failure", description="Tell the customer, then fail with a clear error.")
async def notify_failure(ctx: HandlerContext) -> Result:
    """Reached through ``onFailure``: read ``execution.last_error`` and fail the flow."""
    order = ctx.input or {}
    cause = ctx.execution.last_error
    what = f"{cause.step_id}: {cause.code}: {cause.message}" if cause else "unknown error"
    return Result.failure(
        "ORDER_FAILED",
        f"order {order.get('id', '?')} was not processed ({what}); "
        f"{order.get('customer', 'the customer')} was notified",
        details={
            "failedStep": cause.step_id if cause else None,
            "cause": cause.code if cause else None,
        },
        retryable=False,
    )

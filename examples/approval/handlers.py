"""Handlers of the expense-approval example.

``request-approval`` creates a resume token (the link a manager would get by e-mail),
stores it in the context at ``approvalRequest.resumeToken`` and parks the execution with
``Result.wait`` until someone calls ``flowmonkey resume ID --data '{"approved": true}'``
(optionally with ``--token``) or ``flowmonkey signal ID request-approval --payload ...``.
Either way the answer lands at the step's ``outputKey`` (``approval``), and ``decide``
routes by ``approval.approved``.

Load it with ``--handlers examples/approval/handlers.py``.
"""

from __future__ import annotations

from datetime import timedelta

from flowmonkey import HandlerContext, Result, handler


@handler("submit-expense", description="Check and record the expense claim.")
async def submit_expense(ctx: HandlerContext) -> Result:
    """Reject claims without an id or with a non-positive amount."""
    expense = ctx.input
    if not isinstance(expense, dict) or not expense.get("id"):
        return Result.failure("INVALID_EXPENSE", "expense has no id", retryable=False)
    amount = float(expense.get("amount", 0))
    if amount <= 0:
        return Result.failure(
            "INVALID_EXPENSE", f"expense {expense['id']}: amount must be positive", retryable=False
        )
    return Result.success(
        {"expenseId": expense["id"], "employee": expense.get("employee"), "amount": amount}
    )


@handler("request-approval", description="Ask a manager and wait for the answer.")
async def request_approval(ctx: HandlerContext) -> Result:
    """Create a resume token, keep it in the context, and wait (no timer)."""
    approver = str((ctx.config or {}).get("approver", "manager"))
    token = ctx.create_resume_token(expires_in=timedelta(days=7))
    ctx.set(
        "approvalRequest",
        {"expenseId": ctx.input["expenseId"], "approver": approver, "resumeToken": token},
    )
    return Result.wait(reason="waiting for manager")


@handler("decide", description="Route by approval.approved (ports approved/rejected).")
async def decide(ctx: HandlerContext) -> Result:
    """``{"approved": true}`` -> port ``approved``; ``false`` -> ``rejected``."""
    data = ctx.input
    if not isinstance(data, dict) or not isinstance(data.get("approved"), bool):
        return Result.failure(
            "INVALID_DECISION",
            'resume data must look like {"approved": true} or {"approved": false}',
            retryable=False,
        )
    return Result.success(port="approved" if data["approved"] else "rejected")


@handler("record-decision", description="Record the final decision.")
async def record_decision(ctx: HandlerContext) -> Result:
    """Output ``{"decision", "expenseId", "amount", "by", "comment"}``."""
    submission = ctx.input["submission"]
    answer = ctx.input.get("approval") or {}
    return Result.success(
        {
            "decision": str((ctx.config or {}).get("decision")),
            "expenseId": submission["expenseId"],
            "amount": submission["amount"],
            "by": answer.get("by"),
            "comment": answer.get("comment"),
        }
    )

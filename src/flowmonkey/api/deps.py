"""Helpers the routers share: the app state, JSON answers, tenant-checked lookups."""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from flowmonkey.api.auth import Principal, check_visible
from flowmonkey.api.problems import Problem
from flowmonkey.api.state import ApiState
from flowmonkey.model.execution import Execution
from flowmonkey.stores.cursors import decode_cursor

__all__ = [
    "check_cursor",
    "check_id",
    "json",
    "not_found",
    "state_of",
    "visible_execution",
]

_SAFE_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def state_of(request: Request) -> ApiState:
    """The app's shared state."""
    state: ApiState = request.app.state.flowmonkey
    return state


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """An ``application/json`` answer serialised by orjson (times as ISO 8601)."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def not_found(what: str, ident: str) -> Problem:
    """The 404 of a missing (or invisible) resource."""
    code = f"{what.upper()}_NOT_FOUND"
    return Problem(404, f'{what.capitalize()} "{ident}" not found', code=code)


def check_id(value: str, what: str) -> str:
    """Refuse ids with control characters (header injection) or over 200 characters."""
    if not _SAFE_ID.match(value):
        raise Problem(
            422,
            f"Invalid {what} id.",
            code="VALIDATION_FAILED",
            errors=[{"path": f"path.{what}_id", "message": "control characters or too long"}],
        )
    return value


def check_cursor(cursor: str | None) -> str | None:
    """400 for a cursor that no listing produced."""
    if cursor is None:
        return None
    try:
        decode_cursor(cursor)
    except ValueError:
        raise Problem(400, "The cursor is not one this API produced.", code="BAD_CURSOR")
    return cursor


async def visible_execution(
    state: ApiState, principal: Principal, execution_id: str, *, history: bool = True
) -> Execution:
    """The execution, or 404 when it does not exist or belongs to another tenant."""
    check_id(execution_id, "execution")
    found = await state.engine.store.get(execution_id, history=history)
    missing = not_found("execution", execution_id)
    if found is None:
        raise missing
    check_visible(principal, found.tenant_id, missing)
    return found

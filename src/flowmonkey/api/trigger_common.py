"""Helpers the schedule, webhook-trigger and form routers share: JSON bodies, engine
errors as problems, and the request-body schema the OpenAPI document shows."""

from __future__ import annotations

import json as stdjson
from typing import Any

from fastapi import Request

from flowmonkey import errors
from flowmonkey.api.problems import Problem

__all__ = ["OBJECT_BODY", "json_object", "problem_of"]

OBJECT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
"""``openapi_extra`` of a route that reads a JSON object itself (so every problem of the
object can be listed at once, not just the first the model parser meets)."""


async def json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object: 415 for another content type, 400 for bad JSON,
    422 for JSON that is not an object."""
    raw = await request.body()
    if optional and not raw.strip():
        return {}
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise Problem(415, "Send the body as application/json.", code="UNSUPPORTED_MEDIA_TYPE")
    try:
        data = stdjson.loads(raw)
    except ValueError as exc:
        raise Problem(400, f"The body is not valid JSON: {exc}", code="MALFORMED_JSON")
    if not isinstance(data, dict):
        raise Problem(
            422,
            "The body must be a JSON object.",
            code="VALIDATION_FAILED",
            errors=[{"path": "", "message": "must be an object"}],
        )
    return data


def problem_of(exc: errors.FlowMonkeyError) -> Problem:
    """The problem of an engine error raised by a trigger operation."""
    if isinstance(exc, errors.AlreadyExists):
        return Problem(409, exc.message, code=exc.code)
    if isinstance(exc, errors.ScheduleNotFound):
        return Problem(404, exc.message, code=exc.code)
    if exc.code == "SCHEDULE_BUSY":
        return Problem(409, exc.message, code=exc.code)
    return Problem.from_error(exc)

"""Routes without an API key: health, readiness, metrics, and resume by token."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from flowmonkey import errors
from flowmonkey.api.deps import json, state_of
from flowmonkey.api.problems import Problem
from flowmonkey.api.running import settle
from flowmonkey.api.schemas import TokenResumeOut

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz", tags=["operations"], summary="The process is up")
async def healthz() -> Response:
    """Always 200 while the process serves requests."""
    return json({"status": "ok"})


@router.get("/readyz", tags=["operations"], summary="The store is reachable")
async def readyz(request: Request) -> Response:
    """200 when a store read succeeds (the schema is current once the app started:
    opening the store migrates it or refuses a newer schema); else 503."""
    state = state_of(request)
    if state.stopping.is_set():
        raise Problem(503, "Shutting down.", code="SHUTTING_DOWN")
    try:
        await state.engine.store.list_flows()
    except errors.StoreError:
        raise Problem(503, "The store is unreachable.", code="STORE_UNAVAILABLE")
    return json({"status": "ready"})


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text format; every flowmonkey metric is prefixed ``flowmonkey_``."""
    state = state_of(request)
    if state.metrics is None:
        raise Problem(404, "Metrics are off.", code="NOT_FOUND")
    body = await state.metrics.render(state.engine)
    return Response(body, media_type=state.metrics.content_type())


async def _resume_data(request: Request) -> Any:
    """The resume data of a token call: ``{"data": X}`` (or ``{}``) gives X; any other
    JSON body is the data itself (a third-party webhook callback posts its own payload)."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"The body is not valid JSON: {exc}", code="MALFORMED_JSON")
    if isinstance(body, dict) and set(body) <= {"data"}:
        return body.get("data")
    return body


@router.post(
    "/api/v1/resume/{token}",
    tags=["executions"],
    response_model=TokenResumeOut,
    summary="Resume by a resume token (the token is the credential)",
    openapi_extra={
        "requestBody": {
            "required": False,
            "description": '`{"data": X}` resumes with X; any other JSON is the data itself.',
            "content": {"application/json": {"schema": {}}},
        }
    },
)
async def resume_by_token(token: str, request: Request) -> Response:
    """404 for an unknown, used or revoked token; 410 for an expired one."""
    state = state_of(request)
    client = request.client.host if request.client else "unknown"
    state.public_limiter.check(f"ip:{client}")
    if len(token) > 500:
        raise Problem(404, "Unknown resume token.", code="INVALID_RESUME_TOKEN")
    data = await _resume_data(request)
    try:
        result = await state.engine.resume_by_token(token, data, run_next=False)
    except (errors.InvalidResumeToken, errors.ExecutionNotWaiting):
        # One answer for unknown, used and revoked: a guesser learns nothing.
        raise Problem(404, "Unknown, used or revoked resume token.", code="INVALID_RESUME_TOKEN")
    except ValueError as exc:
        raise Problem(422, str(exc), code="INVALID_INPUT")
    execution = await settle(state, result.execution, 0)
    return json({"execution_id": execution.id, "status": str(execution.status)})

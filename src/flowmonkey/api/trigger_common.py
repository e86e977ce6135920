"""Helpers the schedule, webhook-trigger and form routers share: JSON bodies, engine
errors as problems, and the request-body schema the OpenAPI document shows."""

from __future__ import annotations

import json as stdjson
from typing import Any

from fastapi import Request

from flowmonkey import errors
from flowmonkey.api.auth import Principal, check_visible, create_tenant, list_tenant
from flowmonkey.api.deps import check_id, not_found, state_of
from flowmonkey.api.paging import after_id, page_by_id
from flowmonkey.api.problems import Problem
from flowmonkey.model.documents import TriggerDocument

__all__ = [
    "OBJECT_BODY",
    "create_document",
    "json_object",
    "list_visible",
    "problem_of",
    "visible_document",
]

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


async def visible_document(
    request: Request, principal: Principal, kind: str, noun: str, doc_id: str
) -> TriggerDocument:
    """The stored ``kind`` document ``doc_id``; 404 (``noun`` not found) when it does not
    exist or belongs to a tenant the key does not see."""
    check_id(doc_id, noun)
    found = await state_of(request).engine.store.get_document(kind, doc_id)
    missing = not_found(noun, doc_id)
    if found is None:
        raise missing
    check_visible(principal, found.tenant_id, missing)
    return found


async def create_document(
    request: Request, principal: Principal, kind: str, doc_id: str, spec: dict[str, Any],
    tenant_id: str | None,
) -> TriggerDocument:  # fmt: skip
    """Store a new ``kind`` document under the key's tenant (409 when the id exists)."""
    now = state_of(request).engine.clock.now()
    doc = TriggerDocument(
        kind=kind,
        id=doc_id,
        spec=spec,
        created_at=now,
        updated_at=now,
        tenant_id=create_tenant(principal, tenant_id),
    )
    try:
        await state_of(request).engine.store.create_document(doc)
    except errors.FlowMonkeyError as exc:
        raise problem_of(exc)
    return doc


async def list_visible(
    request: Request,
    principal: Principal,
    kind: str,
    tenant_id: str | None,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[TriggerDocument], str | None]:
    """One page of the ``kind`` documents the key sees (optionally one tenant's), by id:
    at most ``limit`` after ``cursor``, and the next page's cursor (``None``: no more)."""
    listing = f"{kind}s"
    docs = await state_of(request).engine.store.list_documents(
        kind,
        tenant_id=list_tenant(principal, tenant_id),
        after=after_id(cursor, listing),
        limit=limit + 1,
    )
    return page_by_id(docs, limit, listing, lambda d: d.id)

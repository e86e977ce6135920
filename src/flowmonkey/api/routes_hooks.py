"""Webhook triggers: ``/api/v1/triggers`` (manage) and the public ``POST /hooks/{id}``.

The public route, in order: per-IP rate limit, the trigger (404 unknown or disabled),
the signature (401), the JSON body (415/400), JSON Schema validation (422 listing every
error), ``input_map`` (JMESPath over ``{"body", "headers", "query"}``, header names in
lower case), idempotency (a repeat -> 200 with the first execution), then the start:
202 ``{"execution_id", "created": true}``. Body over the limit -> 413 (middleware).
"""

from __future__ import annotations

import json as stdjson
from datetime import datetime
from typing import Annotated, Any

import jmespath
from fastapi import APIRouter, Depends, Query, Request
from jmespath.exceptions import JMESPathError
from jsonschema import Draft202012Validator
from starlette.responses import Response

from flowmonkey import errors
from flowmonkey.api.auth import Principal, require
from flowmonkey.api.deps import json, not_found, state_of
from flowmonkey.api.problems import Problem
from flowmonkey.api.running import settle
from flowmonkey.api.trigger_common import (
    OBJECT_BODY,
    create_document,
    json_object,
    list_visible,
    visible_document,
)
from flowmonkey.api.webhooks import (
    DEFAULT_SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check_signature,
    check_trigger,
    schema_errors,
)
from flowmonkey.model.documents import TriggerDocument
from flowmonkey.model.events import Event

__all__ = ["public_router", "router", "trigger_json"]

router = APIRouter(tags=["triggers"])
public_router = APIRouter(tags=["triggers"])

_KIND = "trigger"


def _validators(request: Request) -> dict[str, tuple[str, Draft202012Validator]]:
    """Compiled schema validators of this app by trigger id (keyed by the schema text, so
    a schema changed by another process is recompiled)."""
    cache: dict[str, tuple[str, Draft202012Validator]] | None = getattr(
        request.app.state, "trigger_validators", None
    )
    if cache is None:
        cache = request.app.state.trigger_validators = {}
    return cache


def trigger_json(doc: TriggerDocument) -> dict[str, Any]:
    """A trigger as JSON: never its secret, only whether it has one."""
    spec = dict(doc.spec)
    has_secret = bool(spec.pop("secret", None))
    return {
        "id": doc.id,
        **spec,
        "has_secret": has_secret,
        "tenant_id": doc.tenant_id,
        "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
        "url": f"/hooks/{doc.id}",
    }


def _spec(values: dict[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in values.items() if k not in ("id", "tenant_id")}
    spec.setdefault("signature_header", DEFAULT_SIGNATURE_HEADER)
    spec.setdefault("enabled", True)
    return spec


async def _check(request: Request, values: dict[str, Any], *, partial: bool) -> None:
    problems = check_trigger(values, partial=partial)
    flow_id = values.get("flow_id")
    if isinstance(flow_id, str) and flow_id:
        try:
            await state_of(request).engine.get_flow(flow_id, values.get("version"))
        except errors.FlowNotFound as exc:
            problems.append({"path": "flow_id", "message": exc.message})
    if problems:
        detail = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        raise Problem(422, f"Invalid trigger: {detail}", code="INVALID_TRIGGER", errors=problems)


async def _visible(request: Request, principal: Principal, trigger_id: str) -> TriggerDocument:
    return await visible_document(request, principal, _KIND, "trigger", trigger_id)


@router.post(
    "/triggers", status_code=201, summary="Create a webhook trigger", openapi_extra=OBJECT_BODY
)
async def create_trigger(
    request: Request, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """201 with the trigger (its secret is never shown again); 422 listing every problem;
    409 when the id exists."""
    body = await json_object(request)
    await _check(request, body, partial=False)
    doc = await create_document(
        request, principal, _KIND, body["id"], _spec(body), body.get("tenant_id")
    )
    return json(trigger_json(doc), 201, {"Location": f"/api/v1/triggers/{doc.id}"})


@router.get("/triggers", summary="List webhook triggers")
async def list_triggers(
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    tenant_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Triggers by id, a page at a time (``next_cursor``)."""
    docs, next_cursor = await list_visible(request, principal, _KIND, tenant_id, limit, cursor)
    return json({"items": [trigger_json(d) for d in docs], "next_cursor": next_cursor})


@router.get("/triggers/{trigger_id}", summary="One webhook trigger")
async def get_trigger(
    request: Request, trigger_id: str, principal: Annotated[Principal, Depends(require("read"))]
) -> Response:
    """The trigger (without its secret)."""
    return json(trigger_json(await _visible(request, principal, trigger_id)))


@router.patch(
    "/triggers/{trigger_id}", summary="Change a webhook trigger", openapi_extra=OBJECT_BODY
)
async def patch_trigger(
    request: Request, trigger_id: str, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """Change fields (``null`` removes an optional one); 422 listing every problem."""
    doc = await _visible(request, principal, trigger_id)
    body = await json_object(request)
    merged = {**doc.spec, **body}
    problems = check_trigger(body, partial=True)
    if problems:
        raise Problem(422, "Invalid trigger.", code="INVALID_TRIGGER", errors=problems)
    await _check(request, {**merged, "id": doc.id}, partial=False)
    doc.spec = {k: v for k, v in _spec(merged).items() if v is not None or k == "idempotency"}
    doc.updated_at = state_of(request).engine.clock.now()
    _validators(request).pop(doc.id, None)
    if not await state_of(request).engine.store.update_document(doc):
        raise not_found("trigger", trigger_id)
    return json(trigger_json(doc))


@router.delete("/triggers/{trigger_id}", status_code=204, summary="Delete a webhook trigger")
async def delete_trigger(
    request: Request, trigger_id: str, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """Delete it (executions it started stay)."""
    await _visible(request, principal, trigger_id)
    await state_of(request).engine.store.delete_document(_KIND, trigger_id)
    _validators(request).pop(trigger_id, None)
    return Response(status_code=204)


# -- the public endpoint -----------------------------------------------------------------


def _validator(request: Request, doc: TriggerDocument) -> Draft202012Validator | None:
    schema = doc.spec.get("input_schema")
    if schema is None:
        return None
    marker = stdjson.dumps(schema, sort_keys=True)
    cache = _validators(request)
    cached = cache.get(doc.id)
    if cached is not None and cached[0] == marker:
        return cached[1]
    validator = Draft202012Validator(schema)
    cache[doc.id] = (marker, validator)
    return validator


def _emit(
    request: Request, doc: TriggerDocument, outcome: str, execution_id: str | None, now: datetime
) -> None:
    data = {"trigger_id": doc.id, "outcome": outcome}
    state_of(request).engine.bus.emit(
        [Event("trigger.received", execution_id, now, data, 0, doc.tenant_id)]
    )


@public_router.post(
    "/hooks/{trigger_id}",
    status_code=202,
    summary="Start a flow from a webhook (public; signed when the trigger has a secret)",
    openapi_extra=OBJECT_BODY,
)
async def receive_hook(request: Request, trigger_id: str) -> Response:
    """202 ``{"execution_id", "created": true}``; a repeat of an idempotency key 200 with
    the first execution and ``"created": false``."""
    state = state_of(request)
    client = request.client.host if request.client else "unknown"
    state.public_limiter.check(f"ip:{client}")
    engine = state.engine
    doc = await engine.store.get_document(_KIND, trigger_id) if len(trigger_id) <= 200 else None
    if doc is None or not doc.spec.get("enabled", True):
        raise Problem(404, f'Trigger "{trigger_id}" not found.', code="TRIGGER_NOT_FOUND")
    spec = doc.spec
    now = engine.clock.now()
    raw = await request.body()
    secret = spec.get("secret")
    if secret:
        header = request.headers.get(spec.get("signature_header", DEFAULT_SIGNATURE_HEADER))
        why = check_signature(secret, raw, header, request.headers.get(TIMESTAMP_HEADER), now)
        if why is not None:
            _emit(request, doc, "unauthorized", None, now)
            raise Problem(401, f"Bad signature: {why}.", code="BAD_SIGNATURE")
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise Problem(415, "Send the body as application/json.", code="UNSUPPORTED_MEDIA_TYPE")
    try:
        body = stdjson.loads(raw) if raw.strip() else None
    except ValueError as exc:
        _emit(request, doc, "malformed", None, now)
        raise Problem(400, f"The body is not valid JSON: {exc}", code="MALFORMED_JSON")
    validator = _validator(request, doc)
    if validator is not None:
        problems = schema_errors(validator, body)
        if problems:
            _emit(request, doc, "invalid", None, now)
            raise Problem(
                422,
                f"The body does not match the trigger's schema ({len(problems)} errors).",
                code="INVALID_INPUT",
                errors=problems,
            )
    headers = {k.lower(): v for k, v in request.headers.items()}
    scope = {"body": body, "headers": headers, "query": dict(request.query_params)}
    try:
        mapped = jmespath.search(spec["input_map"], scope) if spec.get("input_map") else body
    except JMESPathError as exc:
        raise Problem(422, f"input_map failed: {exc}", code="INVALID_INPUT")
    if mapped is None:
        mapped = {}
    if not isinstance(mapped, dict):
        raise Problem(
            422,
            "The mapped input is not an object.",
            code="INVALID_INPUT",
            errors=[{"path": "input_map", "message": "must produce an object"}],
        )
    key = _idempotency_key(spec.get("idempotency"), headers, body)
    try:
        result = await engine.create(
            spec["flow_id"],
            mapped,
            version=spec.get("version"),
            tenant_id=doc.tenant_id,
            idempotency_key=None if key is None else f"hook:{doc.id}:{key}",
            metadata={"trigger_id": doc.id},
        )
    except errors.FlowMonkeyError as exc:
        raise Problem.from_error(exc)
    execution = result.execution
    _emit(request, doc, "accepted" if result.created else "replayed", execution.id, now)
    if result.created:
        await settle(state, execution, 0)
        return json({"execution_id": execution.id, "created": True}, 202)
    return json(
        {"execution_id": execution.id, "created": False}, 200, {"Idempotent-Replayed": "true"}
    )


def _idempotency_key(rule: str | None, headers: dict[str, str], body: Any) -> str | None:
    if not rule:
        return None
    if rule.startswith("header:"):
        return headers.get(rule[7:].lower()) or None
    try:
        found = jmespath.search(rule[5:], body)
    except JMESPathError:
        return None
    if found is None:
        return None
    return found if isinstance(found, str) else stdjson.dumps(found, sort_keys=True)

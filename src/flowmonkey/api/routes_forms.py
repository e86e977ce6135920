"""Forms: ``/api/v1/forms`` (manage, submissions) and the public ``/forms/{id}`` page.

``POST /forms/{id}`` (urlencoded, multipart without files, or JSON), in order: per-IP
rate limit, the form (404; 410 once closed by ``open_until`` or ``max_submissions``),
the honeypot (filled: the success page, nothing stored), the CAPTCHA (when configured),
validation (the page again with every error beside its field and the values kept; JSON
callers get a 422 problem), then ONE store transaction that checks ``dedupe_on`` and
``max_submissions`` and records the submission with the id of the execution it is about
to start; then the start and the success page (JSON: 201).
"""

from __future__ import annotations

import json as stdjson
import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from starlette.responses import HTMLResponse, Response

from flowmonkey import errors
from flowmonkey.api import captcha
from flowmonkey.api.auth import Principal, require
from flowmonkey.api.deps import json, not_found, state_of
from flowmonkey.api.form_render import (
    HONEYPOT,
    fields,
    parse_submission,
    render_page,
    shown_values,
    unsupported,
)
from flowmonkey.api.paging import before_time, page_by_time
from flowmonkey.api.problems import Problem
from flowmonkey.api.running import settle
from flowmonkey.api.trigger_common import (
    OBJECT_BODY,
    create_document,
    json_object,
    list_visible,
    visible_document,
)
from flowmonkey.durations import parse_datetime
from flowmonkey.model.documents import FormSubmission, TriggerDocument
from flowmonkey.model.events import Event

__all__ = ["form_json", "public_router", "router"]

router = APIRouter(tags=["forms"])
public_router = APIRouter(tags=["forms"])

_KIND = "form"
_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_FIELDS = {
    "id",
    "title",
    "description",
    "schema",
    "ui",
    "flow_id",
    "version",
    "dedupe_on",
    "max_submissions",
    "open_until",
    "success_message",
    "captcha",
    "tenant_id",
}
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def form_json(doc: TriggerDocument) -> dict[str, Any]:
    """A form as JSON (``url``: its public page)."""
    return {
        "id": doc.id,
        **doc.spec,
        "tenant_id": doc.tenant_id,
        "url": f"/forms/{doc.id}",
        "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
    }


async def _problems(
    request: Request, values: dict[str, Any], *, partial: bool
) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []

    def bad(path: str, message: str) -> None:
        problems.append({"path": path, "message": message})

    for key in values:
        if key not in _FIELDS or (partial and key in ("id", "tenant_id")):
            bad(key, "unknown field" if key not in _FIELDS else "cannot be changed")
    if not isinstance(values.get("id"), str) or not _ID.match(values["id"]):
        bad("id", "required: letters, digits, '-', '_' and '.', at most 200")
    for name in ("title", "flow_id"):
        if not isinstance(values.get(name), str) or not values[name]:
            bad(name, "required (a non-empty string)")
    schema = values.get("schema")
    if not isinstance(schema, dict):
        bad("schema", "required (a JSON Schema object)")
    else:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            bad("schema", f"not a valid JSON Schema: {exc.message}")
        else:
            problems.extend(unsupported(schema))
    if values.get("ui") is not None and not isinstance(values["ui"], dict):
        bad("ui", "an object")
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    dedupe = values.get("dedupe_on")
    if dedupe is not None and (
        not isinstance(dedupe, list) or not dedupe or any(d not in props for d in dedupe)
    ):
        bad("dedupe_on", "a non-empty list of the schema's property names")
    most = values.get("max_submissions")
    if most is not None and (not isinstance(most, int) or isinstance(most, bool) or most < 1):
        bad("max_submissions", "a whole number >= 1")
    if values.get("open_until") is not None:
        try:
            parse_datetime(values["open_until"], field="open_until")
        except ValueError as exc:
            bad("open_until", str(exc))
    for name in ("description", "success_message", "version"):
        if values.get(name) is not None and not isinstance(values[name], str):
            bad(name, "a string")
    if values.get("captcha") is not None:
        problems.extend(captcha.check_config(values["captcha"]))
    flow_id = values.get("flow_id")
    if isinstance(flow_id, str) and flow_id:
        try:
            await state_of(request).engine.get_flow(flow_id, values.get("version"))
        except errors.FlowNotFound as exc:
            bad("flow_id", exc.message)
    return problems


def _raise(problems: list[dict[str, str]]) -> None:
    if problems:
        detail = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        raise Problem(422, f"Invalid form: {detail}", code="INVALID_FORM", errors=problems)


async def _visible(request: Request, principal: Principal, form_id: str) -> TriggerDocument:
    return await visible_document(request, principal, _KIND, "form", form_id)


@router.post("/forms", status_code=201, summary="Create a public form", openapi_extra=OBJECT_BODY)
async def create_form(
    request: Request, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """201 with the form; 422 listing every problem; 409 when the id exists."""
    body = await json_object(request)
    _raise(await _problems(request, body, partial=False))
    spec = {k: v for k, v in body.items() if k not in ("id", "tenant_id")}
    doc = await create_document(request, principal, _KIND, body["id"], spec, body.get("tenant_id"))
    return json(form_json(doc), 201, {"Location": f"/api/v1/forms/{doc.id}"})


@router.get("/forms", summary="List forms")
async def list_forms(
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    tenant_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Forms by id, a page at a time (``next_cursor``)."""
    docs, next_cursor = await list_visible(request, principal, _KIND, tenant_id, limit, cursor)
    return json({"items": [form_json(d) for d in docs], "next_cursor": next_cursor})


@router.get("/forms/{form_id}", summary="One form")
async def get_form(
    request: Request, form_id: str, principal: Annotated[Principal, Depends(require("read"))]
) -> Response:
    """The form definition."""
    return json(form_json(await _visible(request, principal, form_id)))


@router.patch("/forms/{form_id}", summary="Change a form", openapi_extra=OBJECT_BODY)
async def patch_form(
    request: Request, form_id: str, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """Change fields (``null`` removes an optional one); 422 listing every problem."""
    doc = await _visible(request, principal, form_id)
    body = await json_object(request)
    merged = {
        k: v
        for k, v in {**doc.spec, **body}.items()
        if v is not None and k not in ("id", "tenant_id")
    }
    problems = list(await _problems(request, {**merged, "id": doc.id}, partial=False))
    problems += [
        {"path": k, "message": "cannot be changed"} for k in body if k in ("id", "tenant_id")
    ]
    _raise(problems)
    doc.spec = merged
    doc.updated_at = state_of(request).engine.clock.now()
    if not await state_of(request).engine.store.update_document(doc):
        raise not_found("form", form_id)
    return json(form_json(doc))


@router.delete("/forms/{form_id}", status_code=204, summary="Delete a form")
async def delete_form(
    request: Request, form_id: str, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """Delete it and its stored submissions (executions they started stay)."""
    await _visible(request, principal, form_id)
    await state_of(request).engine.store.delete_document(_KIND, form_id)
    return Response(status_code=204)


@router.get("/forms/{form_id}/submissions", summary="Stored submissions of a form")
async def list_submissions(
    request: Request,
    form_id: str,
    principal: Annotated[Principal, Depends(require("read"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Submissions, newest first, each with the execution it started (``next_cursor``
    for the next page)."""
    before = before_time(cursor, "submissions")
    await _visible(request, principal, form_id)
    found = await state_of(request).engine.store.list_form_submissions(
        form_id, limit=limit + 1, before=before
    )
    subs, next_cursor = page_by_time(found, limit, "submissions", lambda s: (s.created_at, s.id))
    return json({"items": [s.to_dict() for s in subs], "next_cursor": next_cursor})


# -- the public page ---------------------------------------------------------------------


def _page(doc: TriggerDocument, status: int = 200, **parts: Any) -> HTMLResponse:
    spec = doc.spec
    config = spec.get("captcha")
    widget = None
    if config and parts.get("controls", True) is not None:
        provider = captcha.PROVIDERS[config["provider"]]
        widget = {
            "script": provider["script"],
            "widget": provider["widget"],
            "site_key": config["site_key"],
        }
    parts.setdefault("controls", fields(spec["schema"], spec.get("ui")))
    html = render_page(
        title=spec["title"],
        description=spec.get("description"),
        action=f"/forms/{doc.id}",
        captcha=widget,
        **parts,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _message(doc: TriggerDocument, status: int, message: str) -> HTMLResponse:
    return _page(doc, status, controls=None, message=message)


async def _public_form(request: Request, form_id: str) -> TriggerDocument:
    found = None
    if _ID.match(form_id):
        found = await state_of(request).engine.store.get_document(_KIND, form_id)
    if found is None:
        raise Problem(404, f'Form "{form_id}" not found.', code="FORM_NOT_FOUND")
    return found


def _closed(doc: TriggerDocument, now: datetime) -> bool:
    until = doc.spec.get("open_until")
    return until is not None and parse_datetime(until) <= now


@public_router.get("/forms/{form_id}", summary="The public HTML form", response_class=HTMLResponse)
async def show_form(request: Request, form_id: str) -> HTMLResponse:
    """The form page (410 once closed)."""
    doc = await _public_form(request, form_id)
    if _closed(doc, state_of(request).engine.clock.now()):
        return _message(doc, 410, "This form is closed.")
    return _page(doc)


@public_router.post(
    "/forms/{form_id}", summary="Submit a form (public)", response_class=HTMLResponse
)
async def submit_form(request: Request, form_id: str) -> Response:
    """Validate and start the flow: the success page (JSON callers: 201 with the ids);
    the page with every error (JSON: 422 problem); 409 a duplicate; 410 closed."""
    state = state_of(request)
    client = request.client.host if request.client else "unknown"
    state.public_limiter.check(f"ip:{client}")
    doc = await _public_form(request, form_id)
    spec, engine = doc.spec, state.engine
    now = engine.clock.now()
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    wants_json = kind == "application/json"
    posted = await _read(request, kind)
    config = spec.get("captcha")
    token_field = captcha.PROVIDERS[config["provider"]]["field"] if config else None
    token = posted.pop(token_field, None) if token_field else None
    if _closed(doc, now):
        return _answer(wants_json, doc, 410, "This form is closed.", "FORM_CLOSED")
    honey = posted.pop(HONEYPOT, None)
    if honey not in (None, "", [""], []):
        # A bot: answer like a success so it learns nothing; store and start nothing.
        _emit(request, doc, "honeypot", None, now)
        return _success(wants_json, doc, None, None)
    values, problems = parse_submission(spec["schema"], spec.get("ui"), posted, typed=wants_json)
    if config and not problems:
        token_text = token[0] if isinstance(token, list) else token
        why = await captcha.verify(
            captcha.captcha_settings(request.app),
            config,
            token_text if isinstance(token_text, str) else None,
            client,
            engine.options.secrets,
        )
        if why is not None:
            problems[""] = why
    if problems:
        _emit(request, doc, "invalid", None, now)
        if wants_json:
            listed = [{"path": k or "body", "message": v} for k, v in problems.items()]
            raise Problem(422, "The submission is not valid.", code="INVALID_INPUT", errors=listed)
        return _page(doc, 422, values=shown_values(posted, values, problems), errors=problems)
    dedupe_on = spec.get("dedupe_on")
    dedupe_key = None
    if dedupe_on:
        parts = [_normal(values.get(name)) for name in dedupe_on]
        dedupe_key = stdjson.dumps(parts, sort_keys=True, ensure_ascii=False)
    execution_id = str(uuid.uuid4())
    submission = FormSubmission(
        form_id=doc.id,
        data=values,
        created_at=now,
        execution_id=execution_id,
        dedupe_key=dedupe_key,
        client=client,
    )
    outcome = await engine.store.add_form_submission(
        submission, max_submissions=spec.get("max_submissions")
    )
    if outcome == "duplicate":
        _emit(request, doc, "duplicate", None, now)
        return _answer(
            wants_json, doc, 409, "This has already been submitted.", "DUPLICATE_SUBMISSION"
        )
    if outcome == "full":
        return _answer(wants_json, doc, 410, "This form is closed.", "FORM_CLOSED")
    try:
        result = await engine.create(
            spec["flow_id"],
            values,
            version=spec.get("version"),
            tenant_id=doc.tenant_id,
            execution_id=execution_id,
            metadata={"form_id": doc.id, "submission_id": submission.id},
        )
    except errors.FlowMonkeyError as exc:
        await engine.store.delete_form_submission(submission.id)  # nothing half-done stays
        raise Problem.from_error(exc)
    _emit(request, doc, "accepted", execution_id, now)
    await settle(state, result.execution, 0)
    return _success(wants_json, doc, submission.id, execution_id)


async def _read(request: Request, kind: str) -> dict[str, Any]:
    if kind == "application/json":
        return await json_object(request)
    if kind not in _FORM_TYPES:
        raise Problem(
            415,
            "Send the form urlencoded, as multipart, or as JSON.",
            code="UNSUPPORTED_MEDIA_TYPE",
        )
    form = await request.form(max_files=0, max_fields=500)
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise Problem(
                422,
                "Forms take no files.",
                code="INVALID_INPUT",
                errors=[{"path": key, "message": "files are not accepted"}],
            )
        out.setdefault(key, []).append(value)
    return out


def _normal(value: Any) -> Any:
    return value.strip().casefold() if isinstance(value, str) else value


def _success(
    wants_json: bool, doc: TriggerDocument, sub_id: str | None, execution_id: str | None
) -> Response:
    if wants_json:
        return json({"submission_id": sub_id, "execution_id": execution_id}, 201)
    message = doc.spec.get("success_message") or "Thank you, your submission was received."
    return _message(doc, 200, message)


def _answer(
    wants_json: bool, doc: TriggerDocument, status: int, message: str, code: str
) -> Response:
    if wants_json:
        raise Problem(status, message, code=code)
    return _message(doc, status, message)


def _emit(
    request: Request, doc: TriggerDocument, outcome: str, execution_id: str | None, now: datetime
) -> None:
    data = {"form_id": doc.id, "outcome": outcome}
    state_of(request).engine.bus.emit(
        [Event("form.submitted", execution_id, now, data, 0, doc.tenant_id)]
    )

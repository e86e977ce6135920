"""``/api/v1/flows``: list, save (admin), read, graph. Flows are shared by all tenants."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import PlainTextResponse, Response

from flowmonkey import errors
from flowmonkey.api.auth import Principal, require
from flowmonkey.api.deps import json, state_of
from flowmonkey.api.problems import Problem
from flowmonkey.api.schemas import FlowList, FlowSaved
from flowmonkey.definitions.loader import check_flow
from flowmonkey.definitions.mermaid import to_mermaid
from flowmonkey.definitions.source import parse_text
from flowmonkey.definitions.validate import raise_for_issues
from flowmonkey.model.flow import Flow
from flowmonkey.versions import sort_versions

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["flows"])


@router.get("/flows", response_model=FlowList, summary="Flows with their versions")
async def list_flows(
    request: Request, principal: Annotated[Principal, Depends(require("read"))]
) -> Response:
    """Every flow saved in the store or registered in this process."""
    engine = state_of(request).engine
    versions: dict[str, list[str]] = {}
    saved: dict[str, str] = {}
    for stored in await engine.store.list_flows():
        versions[stored.flow_id] = await engine.store.flow_versions(stored.flow_id)
        saved[stored.flow_id] = stored.created_at.isoformat()
    for flow_id in engine.flows.flow_ids():
        known = versions.setdefault(flow_id, [])
        for version in engine.flows.versions(flow_id):
            if version not in known:
                known.append(version)
    items = []
    for flow_id in sorted(versions):
        ordered = sort_versions(versions[flow_id])
        item = {"id": flow_id, "versions": ordered, "latest": ordered[0]}
        if flow_id in saved:
            item["saved_at"] = saved[flow_id]
        items.append(item)
    return json({"items": items})


async def _definition_body(request: Request) -> Mapping[str, Any]:
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "The body is not UTF-8.", code="MALFORMED_BODY")
    is_yaml = kind.endswith("yaml")
    try:
        # The body is text, never a path: the loader reads a string that looks like a
        # file name as a file, so only the parsed mapping goes on.
        data = parse_text(text, "<body>", json_only=not is_yaml)
    except errors.FlowValidationError as exc:
        code = "MALFORMED_YAML" if is_yaml else "MALFORMED_JSON"
        raise Problem(400, exc.message, code=code)
    if not isinstance(data, Mapping):
        raise Problem(
            422,
            "A flow definition must be an object.",
            code="INVALID_FLOW",
            errors=[{"path": "", "message": "a flow definition must be an object"}],
        )
    return data


@router.post(
    "/flows",
    status_code=201,
    response_model=FlowSaved,
    responses={200: {"model": FlowSaved, "description": "Identical version already saved."}},
    summary="Save a flow definition (admin)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
async def save_flow(
    request: Request, principal: Annotated[Principal, Depends(require("admin"))]
) -> Response:
    """Validate and save (201); 200 when identical; 409 when that version exists with
    other content; 422 with every issue."""
    data = await _definition_body(request)
    engine = state_of(request).engine
    # A mapping, never text: the loader reads a string that looks like a path as a file.
    flow, issues = check_flow(data)
    raise_for_issues(flow.id or None, issues)
    try:
        created = await engine.save_flow(flow)
    except errors.FlowValidationError as exc:
        raise Problem(409, exc.message, code="FLOW_VERSION_EXISTS")
    body = {"id": flow.id, "version": flow.version}
    return json(body, 201 if created else 200)


async def _flow(request: Request, flow_id: str, version: str | None) -> Flow:
    return await state_of(request).engine.get_flow(flow_id, version)


@router.get("/flows/{flow_id}", summary="A flow definition (file shape)")
async def get_flow(
    flow_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    version: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """The definition as saved (camelCase, like a flow file)."""
    return json((await _flow(request, flow_id, version)).to_dict())


@router.get(
    "/flows/{flow_id}/graph",
    response_class=PlainTextResponse,
    summary="The flow as Mermaid text",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_graph(
    flow_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    version: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """A Mermaid ``flowchart`` of the flow."""
    flow = await _flow(request, flow_id, version)
    return PlainTextResponse(to_mermaid(flow))

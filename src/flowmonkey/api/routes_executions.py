"""``/api/v1/executions``: start, list, read, history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from flowmonkey.api.auth import Principal, create_tenant, list_tenant, require
from flowmonkey.api.deps import check_cursor, json, state_of, visible_execution
from flowmonkey.api.problems import Problem
from flowmonkey.api.running import start
from flowmonkey.api.schemas import ExecutionOut, ExecutionPage, HistoryOut, StartBody
from flowmonkey.api.state import ApiState
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.tracing import TRACEPARENT_KEY, valid_traceparent

__all__ = ["execution_json", "router", "start_answer", "summary_json"]

router = APIRouter(prefix="/api/v1", tags=["executions"])

Status = ExecutionStatus


def execution_json(execution: Execution) -> dict[str, Any]:
    """The whole execution (context and history included)."""
    return execution.to_dict()


def summary_json(execution: Execution) -> dict[str, Any]:
    """A listing row: no context, no history."""
    return execution.header_dict()


def _idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= 200 or not value.isprintable():
        raise Problem(
            422,
            "Invalid Idempotency-Key.",
            code="VALIDATION_FAILED",
            errors=[{"path": "header.Idempotency-Key", "message": "1-200 printable characters"}],
        )
    return value


@router.post(
    "/executions",
    status_code=201,
    response_model=ExecutionOut,
    responses={200: {"model": ExecutionOut, "description": "An idempotent replay."}},
    summary="Start an execution",
)
async def start_execution(
    body: StartBody,
    request: Request,
    principal: Annotated[Principal, Depends(require("write"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    traceparent: Annotated[str | None, Header()] = None,
) -> Response:
    """Create an execution of a flow; with ``wait`` > 0, answer its state after up to
    that many seconds (completed, failed, waiting, or still pending/running)."""
    return await start_answer(state_of(request), body, principal, idempotency_key, traceparent)


async def start_answer(
    state: ApiState,
    body: StartBody,
    principal: Principal,
    idempotency_key: str | None,
    traceparent: str | None,
) -> Response:
    """What ``POST /api/v1/executions`` answers once its body and caller are known (the
    route above and its lean twin in ``fastpath`` share it)."""
    tenant = create_tenant(principal, body.tenant_id)
    metadata = body.metadata
    parent = valid_traceparent(traceparent)
    if parent is not None:  # steps run later, anywhere, join the caller's trace
        metadata = {**(metadata or {}), TRACEPARENT_KEY: parent}
    execution, created = await start(
        state,
        body.flow_id,
        body.input or {},
        body.wait,
        tenant_id=tenant,
        idempotency_key=_idempotency_key(idempotency_key),
        metadata=metadata,
        correlation_id=body.correlation_id,
        version=body.version,
    )
    headers = {"Location": f"/api/v1/executions/{execution.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
        return json(execution_json(execution), 200, headers)
    return json(execution_json(execution), 201, headers)


@router.get("/executions", response_model=ExecutionPage, summary="List executions (newest first)")
async def list_executions(
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    status: Annotated[list[Status] | None, Query()] = None,
    flow_id: Annotated[str | None, Query(max_length=200)] = None,
    correlation_id: Annotated[str | None, Query(max_length=200)] = None,
    parent_execution_id: Annotated[str | None, Query(max_length=200)] = None,
    tenant_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """A page of executions (no context, no history); ``next_cursor`` for the next."""
    state = state_of(request)
    page = await state.engine.list(
        status=status or None,
        flow_id=flow_id,
        tenant_id=list_tenant(principal, tenant_id),
        correlation_id=correlation_id,
        parent_execution_id=parent_execution_id,
        limit=limit,
        cursor=check_cursor(cursor),
    )
    items = [summary_json(e) for e in page.items]
    return json({"items": items, "next_cursor": page.next_cursor})


@router.get("/executions/{execution_id}", response_model=ExecutionOut, summary="Get one execution")
async def get_execution(
    execution_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
) -> Response:
    """The whole execution: context, tokens, error, wait, history."""
    execution = await visible_execution(state_of(request), principal, execution_id)
    return json(execution_json(execution))


@router.get(
    "/executions/{execution_id}/history",
    response_model=HistoryOut,
    summary="Step records of an execution",
)
async def get_history(
    execution_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
) -> Response:
    """Every step attempt, in order."""
    execution = await visible_execution(state_of(request), principal, execution_id)
    return json({"items": [r.to_dict() for r in execution.history]})

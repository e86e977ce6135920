"""``/api/v1/executions/{id}/...``: resume, signal, cancel, retry; and bulk actions.

Each operation commits first and answers the execution as committed; the next steps run
in the background here (inline apps with the handlers) or on a worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from flowmonkey import errors
from flowmonkey.api.auth import Principal, list_tenant, require
from flowmonkey.api.deps import json, state_of, visible_execution
from flowmonkey.api.problems import Problem
from flowmonkey.api.routes_executions import execution_json
from flowmonkey.api.running import settle
from flowmonkey.api.schemas import (
    BulkBody,
    BulkOut,
    CancelBody,
    CancelOut,
    ExecutionOut,
    ResumeBody,
    SignalBody,
)
from flowmonkey.engine import bulk
from flowmonkey.engine.results import RunResult
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.stores.base import ExecutionQuery

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["executions"])


def _unprocessable(exc: ValueError) -> Problem:
    return Problem(422, str(exc), code="INVALID_INPUT")


async def _answer(request: Request, result: RunResult) -> Response:
    execution = await settle(state_of(request), result.execution, 0)
    return json(execution_json(execution))


@router.post(
    "/executions/{execution_id}/resume",
    response_model=ExecutionOut,
    summary="Resume a waiting execution",
)
async def resume_execution(
    execution_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("write"))],
    body: ResumeBody | None = None,
) -> Response:
    """Hand ``data`` to the waiting step (409 ``EXECUTION_NOT_WAITING`` otherwise)."""
    body = body or ResumeBody()
    state = state_of(request)
    await visible_execution(state, principal, execution_id, history=False)
    try:
        result = await state.engine.resume(
            execution_id, body.data, token=body.token, run_next=False
        )
    except ValueError as exc:
        raise _unprocessable(exc)
    return await _answer(request, result)


@router.post(
    "/executions/{execution_id}/signal",
    response_model=ExecutionOut,
    summary="Signal a step the execution waits at",
)
async def signal_execution(
    execution_id: str,
    body: SignalBody,
    request: Request,
    principal: Annotated[Principal, Depends(require("write"))],
) -> Response:
    """Deliver a signal (409 ``INVALID_SIGNAL`` if it waits at no such step/port)."""
    state = state_of(request)
    await visible_execution(state, principal, execution_id, history=False)
    try:
        result = await state.engine.signal(
            execution_id, body.step_id, body.port, body.payload, run_next=False
        )
    except ValueError as exc:
        raise _unprocessable(exc)
    return await _answer(request, result)


@router.post(
    "/executions/{execution_id}/cancel",
    response_model=CancelOut,
    summary="Cancel an execution (and its children)",
)
async def cancel_execution(
    execution_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("write"))],
    body: CancelBody | None = None,
) -> Response:
    """409 ``EXECUTION_TERMINAL`` when it already ended."""
    state = state_of(request)
    await visible_execution(state, principal, execution_id, history=False)
    result = await state.engine.cancel(
        execution_id, source="api", reason=body.reason if body else None
    )
    if not result.cancelled or result.execution is None:
        status = str(result.previous_status or "terminal")
        raise Problem.from_error(errors.ExecutionTerminal(execution_id, status))
    return json({"cancelled": True, "execution": execution_json(result.execution)})


@router.post(
    "/executions/{execution_id}/retry",
    response_model=ExecutionOut,
    summary="Retry a failed execution from its failed step",
)
async def retry_execution(
    execution_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("write"))],
) -> Response:
    """The failed step runs again with fresh attempts, the context kept, run number + 1
    (409 ``EXECUTION_NOT_FAILED`` unless it is failed)."""
    state = state_of(request)
    await visible_execution(state, principal, execution_id, history=False)
    result = await state.engine.retry(execution_id, run_next=False)
    return await _answer(request, result)


def _time(value: str | None, path: str, issues: list[dict[str, str]]) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        issues.append({"path": path, "message": "not an ISO 8601 time"})
        return None
    if parsed.tzinfo is None:
        issues.append({"path": path, "message": "needs a UTC offset (e.g. Z or +00:00)"})
        return None
    return parsed


async def _bulk_targets(
    request: Request, principal: Principal, body: BulkBody
) -> tuple[list[str], list[dict[str, str]]]:
    """The ids a bulk action matches (tenant-scoped) and those it cannot see."""
    state = state_of(request)
    if (body.ids is None) == (body.filter is None):
        raise Problem(
            422,
            'Give exactly one of "ids" and "filter".',
            code="VALIDATION_FAILED",
            errors=[{"path": "body", "message": 'exactly one of "ids" and "filter"'}],
        )
    tenant = list_tenant(principal, body.tenant_id)
    if body.ids is not None:
        matched: list[str] = []
        unseen: list[dict[str, str]] = []
        for ident in dict.fromkeys(body.ids):
            found = await state.engine.store.get(ident, history=False)
            hidden = found is None or (
                not principal.all_tenants and found.tenant_id != principal.tenant
            )
            if hidden or (tenant is not None and found is not None and found.tenant_id != tenant):
                unseen.append({"id": ident, "code": "EXECUTION_NOT_FOUND"})
                continue
            matched.append(ident)
        return matched, unseen
    assert body.filter is not None
    issues: list[dict[str, str]] = []
    before = _time(body.filter.created_before, "body.filter.created_before", issues)
    after = _time(body.filter.created_after, "body.filter.created_after", issues)
    if issues:
        raise Problem(422, "The filter is invalid.", code="VALIDATION_FAILED", errors=issues)
    statuses = [ExecutionStatus(s) for s in body.filter.status] if body.filter.status else None
    query = ExecutionQuery(
        status=statuses,
        flow_id=body.filter.flow_id,
        tenant_id=tenant,
        correlation_id=body.filter.correlation_id,
        created_before=before,
        created_after=after,
    )
    return await bulk.select(state.engine, query, limit=bulk.BULK_MAX), []


@router.post(
    "/executions/bulk",
    response_model=BulkOut,
    summary="Cancel or retry many executions (by ids or a filter)",
)
async def bulk_action(
    body: BulkBody,
    request: Request,
    principal: Annotated[Principal, Depends(require("write"))],
) -> Response:
    """At most 10,000 per call, tenant-scoped; ``dry_run`` reports what would happen
    (``succeeded`` = how many would be acted on) and changes nothing."""
    state = state_of(request)
    ids, unseen = await _bulk_targets(request, principal, body)

    async def run_here(execution: Execution) -> None:
        await settle(state, execution, 0)

    result = await bulk.apply(
        state.engine, body.action, ids, reason=body.reason, dry_run=body.dry_run,
        source="api", on_retried=run_here,
    )  # fmt: skip
    result.failed = unseen + result.failed
    return json(result.to_dict())

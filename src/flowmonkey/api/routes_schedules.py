"""``/api/v1/schedules``: cron schedules (create, list, get, patch, delete, pause,
unpause, run now, backfill, runs history). See docs/triggers.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from flowmonkey import errors
from flowmonkey.api.auth import Principal, check_visible, create_tenant, list_tenant, require
from flowmonkey.api.deps import check_id, json, not_found, state_of
from flowmonkey.api.paging import after_id, before_time, page_by_id, page_by_time
from flowmonkey.api.problems import Problem
from flowmonkey.api.trigger_common import OBJECT_BODY, json_object, problem_of
from flowmonkey.durations import parse_datetime
from flowmonkey.engine.schedules_api import Schedules
from flowmonkey.model.schedules import Schedule

__all__ = ["router", "schedule_json"]

router = APIRouter(tags=["schedules"])


def schedule_json(schedule: Schedule, schedules: Schedules | None = None) -> dict[str, Any]:
    """A schedule as JSON; with ``schedules``, also ``next_fire_times`` (the next five)."""
    body = schedule.to_dict()
    body.pop("buffered_for")
    body["buffered_for"] = schedule.buffered_for.isoformat() if schedule.buffered_for else None
    if schedules is not None:
        body["next_fire_times"] = [t.isoformat() for t in schedules.next_times(schedule)]
    return body


def _schedules(request: Request) -> Schedules:
    return state_of(request).engine.schedules


async def _visible(request: Request, principal: Principal, schedule_id: str) -> Schedule:
    check_id(schedule_id, "schedule")
    found = await state_of(request).engine.store.get_schedule(schedule_id)
    missing = not_found("schedule", schedule_id)
    if found is None:
        raise missing
    check_visible(principal, found.tenant_id, missing)
    return found


@router.post("/schedules", status_code=201, summary="Create a schedule", openapi_extra=OBJECT_BODY)
async def create_schedule(
    request: Request, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """201 with the schedule; 422 listing every problem (bad cron, unknown time zone or
    flow, end before start...); 409 when the id exists."""
    body = await json_object(request)
    body["tenant_id"] = create_tenant(principal, body.get("tenant_id"))
    try:
        schedule = await _schedules(request).create(**body)
    except errors.FlowMonkeyError as exc:
        raise problem_of(exc)
    return json(
        schedule_json(schedule, _schedules(request)),
        201,
        {"Location": f"/api/v1/schedules/{schedule.id}"},
    )


@router.get("/schedules", summary="List schedules")
async def list_schedules(
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    tenant_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Schedules by id, each with ``next_fire_at`` (``next_cursor`` for the next page)."""
    found = await _schedules(request).list(
        tenant_id=list_tenant(principal, tenant_id),
        after=after_id(cursor, "schedules"),
        limit=limit + 1,
    )
    items, next_cursor = page_by_id(found, limit, "schedules", lambda s: s.id)
    return json({"items": [schedule_json(s) for s in items], "next_cursor": next_cursor})


@router.get("/schedules/{schedule_id}", summary="One schedule and its next five times")
async def get_schedule(
    request: Request, schedule_id: str, principal: Annotated[Principal, Depends(require("read"))]
) -> Response:
    """The schedule with ``next_fire_times``."""
    schedule = await _visible(request, principal, schedule_id)
    return json(schedule_json(schedule, _schedules(request)))


@router.patch("/schedules/{schedule_id}", summary="Change a schedule", openapi_extra=OBJECT_BODY)
async def patch_schedule(
    request: Request, schedule_id: str, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """Change any field but ``id`` and ``tenant_id``; 422 listing every problem."""
    await _visible(request, principal, schedule_id)
    body = await json_object(request)
    try:
        schedule = await _schedules(request).update(schedule_id, **body)
    except errors.FlowMonkeyError as exc:
        raise problem_of(exc)
    return json(schedule_json(schedule, _schedules(request)))


@router.delete("/schedules/{schedule_id}", status_code=204, summary="Delete a schedule")
async def delete_schedule(
    request: Request, schedule_id: str, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """Delete it and its runs history (executions it started stay)."""
    await _visible(request, principal, schedule_id)
    try:
        await _schedules(request).delete(schedule_id)
    except errors.FlowMonkeyError as exc:
        raise problem_of(exc)
    return Response(status_code=204)


@router.post("/schedules/{schedule_id}/pause", summary="Pause a schedule")
async def pause_schedule(
    request: Request, schedule_id: str, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """Stop firing until unpaused."""
    await _visible(request, principal, schedule_id)
    return json(schedule_json(await _schedules(request).pause(schedule_id), _schedules(request)))


@router.post("/schedules/{schedule_id}/unpause", summary="Unpause a schedule")
async def unpause_schedule(
    request: Request, schedule_id: str, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """Fire again from the next time after now (times missed while paused are skipped)."""
    await _visible(request, principal, schedule_id)
    schedule = await _schedules(request).unpause(schedule_id)
    return json(schedule_json(schedule, _schedules(request)))


@router.post(
    "/schedules/{schedule_id}/trigger",
    summary="Run a schedule now",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": {"overlap": {"type": "string"}}}
                }
            },
        }
    },
)
async def trigger_schedule(
    request: Request, schedule_id: str, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """One run now; ``{"overlap"}`` overrides the schedule's policy for this run."""
    await _visible(request, principal, schedule_id)
    body = await json_object(request, optional=True)
    _only(body, {"overlap"})
    try:
        run = await _schedules(request).trigger(schedule_id, overlap=body.get("overlap"))
    except errors.FlowMonkeyError as exc:
        raise problem_of(exc)
    return json(run.to_dict(), 201 if run.outcome == "started" else 200)


@router.post(
    "/schedules/{schedule_id}/backfill",
    summary="Fire every time in a range",
    openapi_extra=OBJECT_BODY,
)
async def backfill_schedule(
    request: Request, schedule_id: str, principal: Annotated[Principal, Depends(require("write"))]
) -> Response:
    """``{"start", "end", "overlap"?}``: every scheduled time in the range, in order, each
    exactly once (a time already handled keeps its first run)."""
    await _visible(request, principal, schedule_id)
    body = await json_object(request)
    _only(body, {"start", "end", "overlap"})
    problems = []
    bounds = {}
    for name in ("start", "end"):
        try:
            bounds[name] = parse_datetime(body.get(name), field=name)
        except ValueError as exc:
            problems.append({"path": name, "message": str(exc)})
    if problems:
        raise Problem(422, "Invalid backfill range.", code="INVALID_SCHEDULE", errors=problems)
    try:
        runs = await _schedules(request).backfill(
            schedule_id, bounds["start"], bounds["end"], overlap=body.get("overlap")
        )
    except errors.FlowMonkeyError as exc:
        raise problem_of(exc)
    return json({"items": [r.to_dict() for r in runs]})


@router.get("/schedules/{schedule_id}/runs", summary="The runs history of a schedule")
async def schedule_runs(
    request: Request,
    schedule_id: str,
    principal: Annotated[Principal, Depends(require("read"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """``scheduled_for, fired_at, execution_id, outcome`` (started, skipped, buffered),
    newest first (``next_cursor`` for the next page)."""
    before = before_time(cursor, "schedule_runs")
    await _visible(request, principal, schedule_id)
    found = await _schedules(request).runs(
        schedule_id, limit=limit + 1, before=None if before is None else before[0]
    )
    runs, next_cursor = page_by_time(
        found, limit, "schedule_runs", lambda r: (r.scheduled_for, r.schedule_id)
    )
    return json({"items": [r.to_dict() for r in runs], "next_cursor": next_cursor})


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Problem(
            422,
            "Unknown fields.",
            code="VALIDATION_FAILED",
            errors=[{"path": k, "message": "unknown field"} for k in unknown],
        )

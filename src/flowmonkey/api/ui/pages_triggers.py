"""Dashboard: schedules (next fire times, runs, pause/unpause/run now), webhook triggers
and public forms (issue 13's features, read through the same store calls as the API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from flowmonkey.api.auth import check_visible, list_tenant
from flowmonkey.api.deps import check_id, not_found, state_of
from flowmonkey.api.problems import Problem
from flowmonkey.api.routes_forms import form_json
from flowmonkey.api.routes_hooks import trigger_json
from flowmonkey.api.ui.render import UiRoute, page
from flowmonkey.api.ui.session import UiSession, check_csrf, session_of
from flowmonkey.model.schedules import Schedule

__all__ = ["router"]

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
Session = Annotated[UiSession, Depends(session_of)]
Csrf = Annotated[str | None, Form()]
RUNS_SHOWN = 50


async def _schedule(request: Request, session: UiSession, schedule_id: str) -> Schedule:
    check_id(schedule_id, "schedule")
    found = await state_of(request).engine.store.get_schedule(schedule_id)
    missing = not_found("schedule", schedule_id)
    if found is None:
        raise missing
    check_visible(session.principal, found.tenant_id, missing)
    return found


@router.get("/schedules")
async def schedules(request: Request, session: Session) -> Response:
    """Every schedule the key sees, with its next fire time."""
    engine = state_of(request).engine
    found = await engine.schedules.list(tenant_id=list_tenant(session.principal, None))
    return page(request, "schedules.html", session, schedules=found)


@router.get("/schedules/{schedule_id}")
async def schedule(schedule_id: str, request: Request, session: Session) -> Response:
    """One schedule: its next five times and its latest runs."""
    found = await _schedule(request, session, schedule_id)
    engine = state_of(request).engine
    return page(
        request,
        "schedule.html",
        session,
        schedule=found,
        next_times=engine.schedules.next_times(found),
        runs=await engine.schedules.runs(schedule_id, limit=RUNS_SHOWN),
        done=request.query_params.get("done"),
    )


@router.post("/schedules/{schedule_id}/{action}")
async def schedule_action(
    schedule_id: str, action: str, request: Request, session: Session, csrf: Csrf = None
) -> Response:
    """Pause, unpause, or run now (once, with the schedule's overlap policy)."""
    check_csrf(session, csrf)
    if not session.can_write:
        raise Problem(403, 'This API key lacks the "write" scope.', code="FORBIDDEN")
    await _schedule(request, session, schedule_id)
    schedules_api = state_of(request).engine.schedules
    if action == "pause":
        await schedules_api.pause(schedule_id)
    elif action == "unpause":
        await schedules_api.unpause(schedule_id)
    elif action == "trigger":
        run = await schedules_api.trigger(schedule_id)
        action = f"run now ({run.outcome})"
    else:
        raise not_found("action", action)
    return RedirectResponse(f"/ui/schedules/{schedule_id}?done={action}", status_code=303)


@router.get("/triggers")
async def triggers(request: Request, session: Session) -> Response:
    """Webhook triggers (never their secrets)."""
    docs = await state_of(request).engine.store.list_documents(
        "trigger", tenant_id=list_tenant(session.principal, None)
    )
    return page(request, "triggers.html", session, triggers=[trigger_json(d) for d in docs])


@router.get("/forms")
async def forms(request: Request, session: Session) -> Response:
    """Public forms and their pages."""
    docs = await state_of(request).engine.store.list_documents(
        "form", tenant_id=list_tenant(session.principal, None)
    )
    return page(request, "forms.html", session, forms=[form_json(d) for d in docs])

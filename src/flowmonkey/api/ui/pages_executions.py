"""Dashboard: the executions list and one execution (graph, timeline, events, actions)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from flowmonkey import errors
from flowmonkey.api.auth import check_visible, list_tenant
from flowmonkey.api.deps import check_cursor, check_id, state_of, visible_execution
from flowmonkey.api.problems import Problem
from flowmonkey.api.routes_events import stream_events
from flowmonkey.api.running import settle
from flowmonkey.api.ui.graph import colored_graph, step_states, timeline
from flowmonkey.api.ui.render import UiRoute, page
from flowmonkey.api.ui.session import UiSession, check_csrf, session_of
from flowmonkey.model.events import EVENT_TYPES
from flowmonkey.model.execution import Execution, ExecutionStatus, TokenStatus

__all__ = ["router"]

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

PAGE_SIZE = 50
EVENTS_SHOWN = 500
"""Stored events the page lists before the live stream takes over."""

Session = Annotated[UiSession, Depends(session_of)]


async def _listing(
    request: Request,
    session: UiSession,
    status: str | None,
    flow_id: str | None,
    q: str | None,
    cursor: str | None,
) -> dict[str, Any]:
    state = state_of(request)
    statuses = None
    if status:
        try:
            statuses = [ExecutionStatus(status)]
        except ValueError:
            raise Problem(400, f'Unknown status "{status}".', code="BAD_REQUEST")
    tenant = list_tenant(session.principal, None)
    page_ = await state.engine.list(
        status=statuses,
        flow_id=flow_id or None,
        tenant_id=tenant,
        correlation_id=q or None,
        limit=PAGE_SIZE,
        cursor=check_cursor(cursor or None),
    )
    counts = await state.engine.store.count_by_status(tenant_id=tenant, flow_id=flow_id or None)
    return {
        "items": page_.items,
        "next_cursor": page_.next_cursor,
        "counts": counts,
        "statuses": [s.value for s in ExecutionStatus],
        "filters": {"status": status or "", "flow_id": flow_id or "", "q": q or ""},
        "first_page": not cursor,
    }


@router.get("/")
async def home() -> Response:
    """The dashboard starts at the executions list."""
    return RedirectResponse("/ui/executions", status_code=303)


@router.get("/executions")
async def executions(
    request: Request,
    session: Session,
    status: Annotated[str | None, Query(max_length=20)] = None,
    flow_id: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Executions, newest first; ``q`` is an execution id (opens it) or a correlation id."""
    q = (q or "").strip() or None
    if q is not None and not cursor:
        check_id(q, "execution")
        found = await state_of(request).engine.store.get(q, history=False)
        if found is not None and _visible(session, found):
            return RedirectResponse(f"/ui/executions/{q}", status_code=303)
    values = await _listing(request, session, status, flow_id, q, cursor)
    return page(request, "executions.html", session, **values)


@router.get("/executions-rows")
async def execution_rows(
    request: Request,
    session: Session,
    status: Annotated[str | None, Query(max_length=20)] = None,
    flow_id: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The first page's table body and counts (htmx auto-refresh)."""
    values = await _listing(request, session, status, flow_id, q, None)
    return page(request, "_execution_rows.html", session, **values)


def _visible(session: UiSession, execution: Execution) -> bool:
    try:
        check_visible(session.principal, execution.tenant_id, Problem(404, ""))
    except Problem:
        return False
    return True


async def _detail(
    request: Request, session: UiSession, execution_id: str, status: int = 200, **extra: Any
) -> Response:
    state = state_of(request)
    execution = await visible_execution(state, session.principal, execution_id)
    graph = None
    try:
        flow = await state.engine.get_flow(execution.flow_id, execution.flow_version)
    except errors.FlowNotFound:
        flow = None
    states = step_states(execution)
    if flow is not None:
        graph = colored_graph(flow, states)
    bars, hidden = timeline(execution)
    events = await state.engine.events(execution.id)
    waiting_steps = [
        t.step_id for t in execution.tokens if t.status == TokenStatus.WAITING and t.step_id
    ]
    return page(
        request,
        "execution.html",
        session,
        status,
        execution=execution,
        graph=graph,
        states=states,
        bars=bars,
        hidden_bars=hidden,
        events=events[-EVENTS_SHOWN:],
        last_sequence=events[-1].sequence if events else 0,
        waiting_steps=waiting_steps,
        event_types=EVENT_TYPES,
        done=request.query_params.get("done"),
        **extra,
    )


@router.get("/executions/{execution_id}")
async def execution(execution_id: str, request: Request, session: Session) -> Response:
    """One execution: status, graph, timeline, context, outputs, events, actions."""
    return await _detail(request, session, execution_id)


@router.get("/executions/{execution_id}/events")
async def execution_events(
    execution_id: str,
    request: Request,
    session: Session,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Response:
    """The live event stream (SSE) of the page, signed in by the session cookie."""
    state = state_of(request)
    found = await visible_execution(state, session.principal, execution_id, history=False)
    last = request.headers.get("last-event-id", "")
    start = int(last) if last.isdigit() else after
    return StreamingResponse(
        stream_events(request, execution_id, start, found.status.is_terminal),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _writer(session: UiSession, csrf: str | None) -> None:
    check_csrf(session, csrf)
    if not session.can_write:
        raise Problem(403, 'This API key lacks the "write" scope.', code="FORBIDDEN")


def _done(execution_id: str, what: str) -> Response:
    return RedirectResponse(f"/ui/executions/{execution_id}?done={what}", status_code=303)


def _parse_json(text: str, field: str) -> tuple[Any, str | None]:
    """The JSON a person typed, or the error to show next to the field."""
    if not text.strip():
        return None, None
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError as exc:
        return None, f"{field} is not valid JSON: {exc}"


Csrf = Annotated[str | None, Form()]


@router.post("/executions/{execution_id}/cancel")
async def cancel(
    execution_id: str, request: Request, session: Session, csrf: Csrf = None
) -> Response:
    """Cancel (confirmed in the page), then back to the execution."""
    _writer(session, csrf)
    state = state_of(request)
    await visible_execution(state, session.principal, execution_id, history=False)
    result = await state.engine.cancel(execution_id, source="ui", reason="cancelled in dashboard")
    if not result.cancelled:
        raise errors.ExecutionTerminal(execution_id, str(result.previous_status or "terminal"))
    return _done(execution_id, "cancelled")


@router.post("/executions/{execution_id}/retry")
async def retry(
    execution_id: str, request: Request, session: Session, csrf: Csrf = None
) -> Response:
    """Retry a failed execution from its failed step."""
    _writer(session, csrf)
    state = state_of(request)
    await visible_execution(state, session.principal, execution_id, history=False)
    result = await state.engine.retry(execution_id, run_next=False)
    await settle(state, result.execution, 0)
    return _done(execution_id, "retried")


@router.post("/executions/{execution_id}/resume")
async def resume(
    execution_id: str,
    request: Request,
    session: Session,
    csrf: Csrf = None,
    data: Annotated[str, Form(max_length=1 << 20)] = "",
) -> Response:
    """Resume with the JSON typed in the form; malformed JSON re-shows the form."""
    _writer(session, csrf)
    state = state_of(request)
    await visible_execution(state, session.principal, execution_id, history=False)
    value, problem = _parse_json(data, "The resume data")
    if problem is not None:
        return await _detail(
            request, session, execution_id, 400, resume_error=problem, resume_text=data
        )
    try:
        result = await state.engine.resume(execution_id, value, run_next=False)
    except errors.FlowMonkeyError as exc:
        p = Problem.from_error(exc)
        return await _detail(
            request, session, execution_id, p.status, resume_error=p.detail, resume_text=data
        )
    await settle(state, result.execution, 0)
    return _done(execution_id, "resumed")


@router.post("/executions/{execution_id}/signal")
async def signal(
    execution_id: str,
    request: Request,
    session: Session,
    csrf: Csrf = None,
    step_id: Annotated[str, Form(max_length=200)] = "",
    port: Annotated[str, Form(max_length=200)] = "",
    payload: Annotated[str, Form(max_length=1 << 20)] = "",
) -> Response:
    """Deliver a signal to a waiting step (port optional, payload JSON)."""
    _writer(session, csrf)
    state = state_of(request)
    await visible_execution(state, session.principal, execution_id, history=False)
    value, problem = _parse_json(payload, "The signal payload")
    if problem is None:
        try:
            result = await state.engine.signal(
                execution_id, step_id, port or None, value, run_next=False
            )
        except (errors.FlowMonkeyError, ValueError) as exc:
            problem = str(exc) if isinstance(exc, ValueError) else exc.message
        else:
            await settle(state, result.execution, 0)
            return _done(execution_id, "signalled")
    return await _detail(
        request, session, execution_id, 400, signal_error=problem, signal_text=payload
    )

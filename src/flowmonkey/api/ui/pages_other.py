"""Dashboard: sign-in and sign-out, flows, the inbox of user tasks, data tables."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Query, Request
from markupsafe import Markup
from starlette.responses import RedirectResponse, Response

from flowmonkey import errors
from flowmonkey.api.auth import check_visible, list_tenant
from flowmonkey.api.deps import check_id, not_found, state_of
from flowmonkey.api.form_render import (
    fields,
    parse_submission,
    render_controls,
    shown_values,
    unsupported,
)
from flowmonkey.api.problems import Problem
from flowmonkey.api.routes_tables import table_call
from flowmonkey.api.running import settle
from flowmonkey.api.ui.render import UiRoute, page
from flowmonkey.api.ui.session import (
    COOKIE,
    LOGIN_COOKIE,
    UiSession,
    check_csrf,
    safe_next,
    session_of,
    set_session,
    signer_of,
)
from flowmonkey.definitions.mermaid import to_mermaid
from flowmonkey.model.records import Task
from flowmonkey.stores.base import TaskQuery
from flowmonkey.versions import sort_versions

__all__ = ["router"]

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
Session = Annotated[UiSession, Depends(session_of)]
Csrf = Annotated[str | None, Form()]
INBOX_SIZE = 100


# -- sign-in ---------------------------------------------------------------------------


def _login_page(
    request: Request, next_url: str, error: str | None = None, status: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    flash = request.cookies.get("fm_flash")
    response = page(
        request,
        "login.html",
        None,
        status,
        next_url=safe_next(next_url),
        login_token=token,
        error=error or flash,
    )
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=3600, path="/ui/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    if flash:
        response.delete_cookie("fm_flash", path="/ui/")
    return response


@router.get("/login")
async def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    """The sign-in form (an API key)."""
    return _login_page(request, next or "/ui/executions")


@router.post("/login")
async def login(
    request: Request,
    key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/ui/executions",
    token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check the key, then set the session cookie and go where the person was going."""
    client = request.client.host if request.client else "unknown"
    state_of(request).public_limiter.check(f"ip:{client}")  # 429 for a guessing loop
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(token, expected):
        return _login_page(request, next, "The form expired; try again.", 403)
    state = state_of(request)
    if state.keys is None:
        return RedirectResponse(safe_next(next), status_code=303)
    try:
        await state.keys.check(key.strip())
    except Problem as exc:
        return _login_page(request, next, exc.detail, 401)
    issued = int(state.engine.clock.now().timestamp())
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session(
        response,
        request,
        signer_of(request).cookie(key.strip(), issued),
        int(state.settings.ui_session_ttl),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui/")
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Csrf = None) -> Response:
    """Forget the session cookie."""
    session = await session_of(request)
    check_csrf(session, csrf)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui/")
    return response


# -- flows -----------------------------------------------------------------------------


@router.get("/flows")
async def flows(request: Request, session: Session) -> Response:
    """Every flow with its versions (flows are shared by all tenants)."""
    engine = state_of(request).engine
    versions: dict[str, list[str]] = {}
    for stored in await engine.store.list_flows():
        versions[stored.flow_id] = await engine.store.flow_versions(stored.flow_id)
    for flow_id in engine.flows.flow_ids():
        known = versions.setdefault(flow_id, [])
        known += [v for v in engine.flows.versions(flow_id) if v not in known]
    items = [(f, sort_versions(v)) for f, v in sorted(versions.items())]
    return page(request, "flows.html", session, flows=items)


@router.get("/flows/{flow_id}")
async def flow(
    flow_id: str,
    request: Request,
    session: Session,
    version: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """One flow version: graph and definition, with links to its other versions."""
    check_id(flow_id, "flow")
    engine = state_of(request).engine
    found = await engine.get_flow(flow_id, version or None)
    known = set(await engine.store.flow_versions(flow_id))
    if flow_id in engine.flows.flow_ids():
        known.update(engine.flows.versions(flow_id))
    return page(
        request,
        "flow.html",
        session,
        flow=found,
        graph=to_mermaid(found),
        definition=found.to_dict(),
        versions=sort_versions(list(known)),
    )


# -- inbox -----------------------------------------------------------------------------


@router.get("/inbox")
async def inbox(request: Request, session: Session) -> Response:
    """Pending user tasks the key can see, newest first."""
    tasks = await state_of(request).engine.store.list_tasks(
        TaskQuery(
            status="pending",
            tenant_id=list_tenant(session.principal, None),
            limit=INBOX_SIZE,
        )
    )
    tasks.reverse()  # the store lists oldest first
    return page(request, "inbox.html", session, tasks=tasks)


async def _task(request: Request, session: UiSession, task_id: str) -> Task:
    check_id(task_id, "task")
    task = await state_of(request).engine.store.get_task(task_id)
    missing = not_found("task", task_id)
    if task is None:
        raise missing
    check_visible(session.principal, task.tenant_id, missing)
    return task


JSON_FIELD = "data"
"""The one text area of a task whose form the renderer cannot draw (nested schemas)."""


def _controls(task: Task) -> list[Any] | None:
    """The form's controls (the shared renderer of public forms), or ``None`` when the
    schema is not one it draws: then the page asks for the data as JSON."""
    if task.form and not unsupported(task.form):
        return fields(task.form)
    return None


def _task_page(
    request: Request,
    session: UiSession,
    task: Task,
    status: int = 200,
    values: dict[str, Any] | None = None,
    problems: dict[str, str] | None = None,
    typed: str = "",
) -> Response:
    controls = _controls(task)
    html = None
    if controls is not None:
        html = Markup(render_controls(controls, values or {}, problems or {}))
    return page(
        request,
        "task.html",
        session,
        status,
        task=task,
        controls=html,
        problems=problems or {},
        typed=typed,
    )


@router.get("/inbox/{task_id}")
async def task(task_id: str, request: Request, session: Session) -> Response:
    """One task with its form."""
    return _task_page(request, session, await _task(request, session, task_id))


@router.post("/inbox/{task_id}")
async def complete(task_id: str, request: Request, session: Session) -> Response:
    """Complete the task with the form's values; problems re-show the form, values kept."""
    form = await request.form()
    check_csrf(session, str(form.get("csrf") or ""))
    if not session.can_write:
        raise Problem(403, 'This API key lacks the "write" scope.', code="FORBIDDEN")
    found = await _task(request, session, task_id)
    posted: dict[str, list[str]] = {}
    for name, value in form.multi_items():
        if name != "csrf" and isinstance(value, str):
            posted.setdefault(name, []).append(value)
    typed = (posted.get(JSON_FIELD) or [""])[0]
    data: Any
    if found.form and _controls(found) is not None:
        data, problems = parse_submission(found.form, None, posted)
    else:
        try:
            data, problems = (orjson.loads(typed) if typed.strip() else {}), {}
        except orjson.JSONDecodeError as exc:
            data, problems = None, {"": f"The data is not valid JSON: {exc}"}
    if not problems:
        state = state_of(request)
        try:
            result = await state.engine.complete_task(
                task_id, None, data, session.principal.key_id, run_next=False
            )
        except errors.FlowMonkeyError as exc:
            p = Problem.from_error(exc)
            problems = {e["path"].split(".")[-1]: e["message"] for e in p.errors or []}
            problems = problems or {"": p.detail}
        else:
            await settle(state, result.execution, 0)
            return RedirectResponse(
                f"/ui/executions/{found.execution_id}?done=completed", status_code=303
            )
    shown = shown_values(posted, data if isinstance(data, dict) else {}, problems)
    return _task_page(request, session, found, 422, shown, problems, typed)


# -- tables ----------------------------------------------------------------------------


@router.get("/tables")
async def tables(request: Request, session: Session) -> Response:
    """Every data table (shared definitions; rows are per tenant)."""
    return page(
        request, "tables.html", session, tables=await state_of(request).engine.tables.list()
    )


@router.get("/tables/{name}")
async def table(
    name: str,
    request: Request,
    session: Session,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """A page of the table's rows that the key's tenant owns, newest first."""
    check_id(name, "table")
    engine = state_of(request).engine
    definition = await table_call(engine.tables.get(name))
    rows = await table_call(
        engine.tables.rows(
            name, tenant_id=list_tenant(session.principal, None), limit=50, cursor=cursor or None
        )
    )
    columns = list(definition.schema.get("properties", {}) or {})
    return page(request, "table.html", session, table=definition, rows=rows, columns=columns)


@router.get("/{rest:path}")
async def unknown_page(rest: str, request: Request) -> Response:
    """Any other dashboard address: the 404 page (after sign-in, as for every page)."""
    await session_of(request)
    raise Problem(404, "There is no such page.", code="NOT_FOUND")

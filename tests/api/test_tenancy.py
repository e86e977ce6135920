"""Cross-tenant isolation, one test per route, GENERATED from the app's route table.

Every ``/api/v1`` route must have an entry in ``CROSS_TENANT`` (a route without one
fails ``test_every_route_has_a_cross_tenant_case``), so a new route cannot forget it.
Each case makes ``globex`` act on resources of ``acme`` and checks that it gets a 404 (or
a list without them) and that nothing of ``acme`` changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from flowmonkey.api import create_app
from flowmonkey.testing import make_engine

from .conftest import Api


@dataclass
class Acme:
    """Resources of tenant acme."""

    waiting: str
    failed: str
    task: str
    row: str
    schedule: str = "acme-nightly"
    trigger: str = "acme-orders"
    form: str = "acme-signup"


async def acme_resources(api: Api) -> Acme:
    client = api["acme"]
    waiting = await client.post("/api/v1/executions", json={"flow_id": "approval", "wait": 5})
    failed = await client.post("/api/v1/executions", json={"flow_id": "gated", "wait": 5})
    inbox = await client.post("/api/v1/executions", json={"flow_id": "inbox", "wait": 5})
    assert waiting.json()["status"] == "waiting"
    assert failed.json()["status"] == "failed"
    assert inbox.json()["status"] == "waiting"
    tasks = (await client.get("/api/v1/tasks")).json()["items"]
    assert len(tasks) == 1
    table = {"name": "notes", "schema": {"type": "object"}}
    assert (await api["admin"].post("/api/v1/tables", json=table)).status_code == 201
    row = await client.post("/api/v1/tables/notes/rows", json={"data": {"n": 1}})
    assert row.json()["tenant_id"] == "acme"
    made = Acme(waiting=waiting.json()["id"], failed=failed.json()["id"], task=tasks[0]["id"],
                row=row.json()["id"])  # fmt: skip
    # Triggers of acme (issue 13): a schedule, a webhook trigger, a form with a submission.
    for path, body in (
        ("/api/v1/schedules", {"id": made.schedule, "flow_id": "three", "cron": "0 2 * * *"}),
        ("/api/v1/triggers", {"id": made.trigger, "flow_id": "three"}),
        ("/api/v1/forms", {"id": made.form, "title": "Sign up", "flow_id": "three",
                           "schema": {"type": "object", "properties": {"n": {"type": "string"}}}}),
    ):  # fmt: skip
        assert (await client.post(path, json=body)).status_code == 201
    sent = await api["anonymous"].post(f"/forms/{made.form}", json={"n": "x"})
    assert sent.status_code == 201
    return made


Call = Callable[[httpx.AsyncClient, Acme], Awaitable[httpx.Response]]


def _hidden(code: str) -> Callable[[httpx.Response, Acme], None]:
    def check(response: httpx.Response, acme: Acme) -> None:
        assert response.status_code == 404, response.text
        assert response.json()["code"] == code

    return check


def _no_acme_items(response: httpx.Response, acme: Acme) -> None:
    assert response.status_code == 200, response.text
    text = response.text
    for ident in (acme.waiting, acme.failed, acme.task, acme.row, acme.schedule, acme.trigger,
                  acme.form):  # fmt: skip
        assert ident not in text


def _bulk_sees_nothing(response: httpx.Response, acme: Acme) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["succeeded"] == 0
    assert {f["code"] for f in body["failed"]} <= {"EXECUTION_NOT_FOUND"}


def _created_in_own_tenant(response: httpx.Response, acme: Acme) -> None:
    assert response.status_code == 201, response.text
    assert response.json()["tenant_id"] == "globex"


_EX = _hidden("EXECUTION_NOT_FOUND")
_TASK = _hidden("TASK_NOT_FOUND")
_SCH = _hidden("SCHEDULE_NOT_FOUND")
_HOOK = _hidden("TRIGGER_NOT_FOUND")
_FORM = _hidden("FORM_NOT_FOUND")

CROSS_TENANT: dict[tuple[str, str], tuple[Call, Callable[[httpx.Response, Acme], None]]] = {
    ("GET", "/api/v1/executions"): (
        lambda c, a: c.get("/api/v1/executions", params={"limit": 500}), _no_acme_items),
    ("POST", "/api/v1/executions"): (
        lambda c, a: c.post("/api/v1/executions", json={"flow_id": "three"}),
        _created_in_own_tenant),
    ("GET", "/api/v1/executions/{execution_id}"): (
        lambda c, a: c.get(f"/api/v1/executions/{a.waiting}"), _EX),
    ("GET", "/api/v1/executions/{execution_id}/history"): (
        lambda c, a: c.get(f"/api/v1/executions/{a.waiting}/history"), _EX),
    ("GET", "/api/v1/executions/{execution_id}/events"): (
        lambda c, a: c.get(f"/api/v1/executions/{a.waiting}/events"), _EX),
    ("POST", "/api/v1/executions/{execution_id}/resume"): (
        lambda c, a: c.post(f"/api/v1/executions/{a.waiting}/resume", json={"data": 1}), _EX),
    ("POST", "/api/v1/executions/{execution_id}/signal"): (
        lambda c, a: c.post(f"/api/v1/executions/{a.waiting}/signal", json={"step_id": "ask"}),
        _EX),
    ("POST", "/api/v1/executions/{execution_id}/cancel"): (
        lambda c, a: c.post(f"/api/v1/executions/{a.waiting}/cancel"), _EX),
    ("POST", "/api/v1/executions/{execution_id}/retry"): (
        lambda c, a: c.post(f"/api/v1/executions/{a.failed}/retry"), _EX),
    ("POST", "/api/v1/executions/bulk"): (
        lambda c, a: c.post("/api/v1/executions/bulk",
                            json={"action": "cancel", "ids": [a.waiting, a.failed]}),
        _bulk_sees_nothing),
    ("GET", "/api/v1/tasks"): (lambda c, a: c.get("/api/v1/tasks"), _no_acme_items),
    ("GET", "/api/v1/tasks/{task_id}"): (lambda c, a: c.get(f"/api/v1/tasks/{a.task}"), _TASK),
    ("POST", "/api/v1/tasks/{task_id}/complete"): (
        lambda c, a: c.post(f"/api/v1/tasks/{a.task}/complete", json={"data": {"ok": True}}),
        _TASK),
    # triggers (issue 13)
    ("GET", "/api/v1/schedules"): (lambda c, a: c.get("/api/v1/schedules"), _no_acme_items),
    ("POST", "/api/v1/schedules"): (
        lambda c, a: c.post("/api/v1/schedules", json={"flow_id": "three", "cron": "@daily"}),
        _created_in_own_tenant),
    ("GET", "/api/v1/schedules/{schedule_id}"): (
        lambda c, a: c.get(f"/api/v1/schedules/{a.schedule}"), _SCH),
    ("PATCH", "/api/v1/schedules/{schedule_id}"): (
        lambda c, a: c.patch(f"/api/v1/schedules/{a.schedule}", json={"cron": "@hourly"}), _SCH),
    ("DELETE", "/api/v1/schedules/{schedule_id}"): (
        lambda c, a: c.delete(f"/api/v1/schedules/{a.schedule}"), _SCH),
    ("GET", "/api/v1/schedules/{schedule_id}/runs"): (
        lambda c, a: c.get(f"/api/v1/schedules/{a.schedule}/runs"), _SCH),
    ("POST", "/api/v1/schedules/{schedule_id}/pause"): (
        lambda c, a: c.post(f"/api/v1/schedules/{a.schedule}/pause"), _SCH),
    ("POST", "/api/v1/schedules/{schedule_id}/unpause"): (
        lambda c, a: c.post(f"/api/v1/schedules/{a.schedule}/unpause"), _SCH),
    ("POST", "/api/v1/schedules/{schedule_id}/trigger"): (
        lambda c, a: c.post(f"/api/v1/schedules/{a.schedule}/trigger"), _SCH),
    ("POST", "/api/v1/schedules/{schedule_id}/backfill"): (
        lambda c, a: c.post(f"/api/v1/schedules/{a.schedule}/backfill",
                            json={"start": "2026-01-01T00:00:00Z", "end": "2026-01-03T00:00:00Z"}),
        _SCH),
    ("GET", "/api/v1/triggers"): (lambda c, a: c.get("/api/v1/triggers"), _no_acme_items),
    ("POST", "/api/v1/triggers"): (
        lambda c, a: c.post("/api/v1/triggers", json={"id": "g-hook", "flow_id": "three"}),
        _created_in_own_tenant),
    ("GET", "/api/v1/triggers/{trigger_id}"): (
        lambda c, a: c.get(f"/api/v1/triggers/{a.trigger}"), _HOOK),
    ("PATCH", "/api/v1/triggers/{trigger_id}"): (
        lambda c, a: c.patch(f"/api/v1/triggers/{a.trigger}", json={"enabled": False}), _HOOK),
    ("DELETE", "/api/v1/triggers/{trigger_id}"): (
        lambda c, a: c.delete(f"/api/v1/triggers/{a.trigger}"), _HOOK),
    ("GET", "/api/v1/forms"): (lambda c, a: c.get("/api/v1/forms"), _no_acme_items),
    ("POST", "/api/v1/forms"): (
        lambda c, a: c.post("/api/v1/forms", json={"id": "g-form", "title": "T", "flow_id": "three",
                                                   "schema": {"type": "object", "properties": {}}}),
        _created_in_own_tenant),
    ("GET", "/api/v1/forms/{form_id}"): (lambda c, a: c.get(f"/api/v1/forms/{a.form}"), _FORM),
    ("PATCH", "/api/v1/forms/{form_id}"): (
        lambda c, a: c.patch(f"/api/v1/forms/{a.form}", json={"title": "Mine"}), _FORM),
    ("DELETE", "/api/v1/forms/{form_id}"): (
        lambda c, a: c.delete(f"/api/v1/forms/{a.form}"), _FORM),
    ("GET", "/api/v1/forms/{form_id}/submissions"): (
        lambda c, a: c.get(f"/api/v1/forms/{a.form}/submissions"), _FORM),
    ("GET", "/api/v1/tables/{name}/rows"): (
        lambda c, a: c.get("/api/v1/tables/notes/rows", params={"limit": 500}), _no_acme_items),
    ("POST", "/api/v1/tables/{name}/rows"): (
        lambda c, a: c.post("/api/v1/tables/notes/rows", json={"data": {"n": 2}}),
        _created_in_own_tenant),
}  # fmt: skip

SHARED = {
    ("GET", "/api/v1/flows"),
    ("POST", "/api/v1/flows"),
    ("GET", "/api/v1/flows/{flow_id}"),
    ("GET", "/api/v1/flows/{flow_id}/graph"),
    ("POST", "/api/v1/resume/{token}"),
    ("GET", "/api/v1/tables"),
    ("POST", "/api/v1/tables"),
    ("GET", "/api/v1/tables/{name}"),
}
"""Routes with no tenant-owned resource: flows and table definitions are shared by every
tenant (an admin uploads them), and a resume token is its own credential (tested in
test_control.py)."""


def api_routes() -> list[tuple[str, str]]:
    """(method, path) of every /api/v1 route of the app, from its route table (the
    OpenAPI document FastAPI builds from it, so an undocumented route shows up too)."""
    app = create_app(make_engine())
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/v1"):
            found += [(method.upper(), path) for method in operations]
    return sorted(found)


ROUTES = api_routes()


def test_every_route_has_a_cross_tenant_case() -> None:
    missing = [r for r in ROUTES if r not in CROSS_TENANT and r not in SHARED]
    assert not missing, f"routes without a cross-tenant case: {missing}"
    stale = [r for r in CROSS_TENANT if r not in ROUTES]
    assert not stale


async def _snapshot(api: Api, acme: Acme) -> Any:
    out = []
    for ident in (acme.waiting, acme.failed):
        execution = await api.engine.store.get(ident)
        assert execution is not None
        out.append((execution.status, execution.event_seq, execution.run_number))
    task = await api.engine.store.get_task(acme.task)
    assert task is not None
    out.append(task.status)
    store = api.engine.store
    out.append(await store.get_schedule(acme.schedule))
    out.append(await store.list_schedule_runs(acme.schedule))
    out.append(await store.get_document("trigger", acme.trigger))
    out.append(await store.get_document("form", acme.form))
    out.append(await store.list_form_submissions(acme.form))
    return out


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r in CROSS_TENANT], ids=lambda r: f"{r[0]} {r[1]}"
)
async def test_another_tenant_cannot_see_or_change(api: Api, route: tuple[str, str]) -> None:
    acme = await acme_resources(api)
    before = await _snapshot(api, acme)
    call, check = CROSS_TENANT[route]
    check(await call(api["globex"], acme), acme)
    assert await _snapshot(api, acme) == before
    # The owner (and a * key) still reach the same resources.
    owner = await api["acme"].get(f"/api/v1/executions/{acme.waiting}")
    assert owner.status_code == 200
    assert (await api["admin"].get(f"/api/v1/tasks/{acme.task}")).status_code == 200

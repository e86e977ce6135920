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
    return Acme(waiting=waiting.json()["id"], failed=failed.json()["id"], task=tasks[0]["id"],
                row=row.json()["id"])  # fmt: skip


Call = Callable[[httpx.AsyncClient, Acme], Awaitable[httpx.Response]]


def _hidden(code: str) -> Callable[[httpx.Response, Acme], None]:
    def check(response: httpx.Response, acme: Acme) -> None:
        assert response.status_code == 404, response.text
        assert response.json()["code"] == code

    return check


def _no_acme_items(response: httpx.Response, acme: Acme) -> None:
    assert response.status_code == 200, response.text
    text = response.text
    for ident in (acme.waiting, acme.failed, acme.task, acme.row):
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

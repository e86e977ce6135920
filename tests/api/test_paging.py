"""Cursor pagination of every list route (HTTP.md, Conventions): paging through more items
than one page returns each once, in order, with ``next_cursor`` null only on the last
page; tenancy holds on every page; a bad or foreign cursor is a 400 ``BAD_CURSOR``."""

from __future__ import annotations

import urllib.parse
from datetime import timedelta
from typing import Any

import httpx
import pytest

from .conftest import Api
from .test_basics import assert_problem
from .test_forms import FORM, GOOD, URLENC
from .test_hooks import make_trigger


async def _all_pages(client: httpx.AsyncClient, path: str, limit: int) -> list[list[Any]]:
    """Every page of ``path`` (the items of each)."""
    pages: list[list[Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        answer = await client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(body["items"]) == limit  # a cursor only when there may be more
        assert len(pages) < 50


def _ids(pages: list[list[Any]], field: str = "id") -> list[Any]:
    return [item[field] for page in pages for item in page]


async def test_schedules_page_by_id_and_stay_in_their_tenant(api: Api) -> None:
    for n in range(5):
        for tenant in ("acme", "globex"):
            body = {"id": f"{tenant}-{n}", "flow_id": "three", "cron": "0 2 * * *"}
            assert (await api[tenant].post("/api/v1/schedules", json=body)).status_code == 201
    pages = await _all_pages(api["acme"], "/api/v1/schedules", 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert _ids(pages) == [f"acme-{n}" for n in range(5)]
    everything = await _all_pages(api["admin"], "/api/v1/schedules", 3)
    assert len(_ids(everything)) == 10 and len(set(_ids(everything))) == 10
    # exactly one page: no cursor
    one = (await api["acme"].get("/api/v1/schedules", params={"limit": 5})).json()
    assert len(one["items"]) == 5 and one["next_cursor"] is None


async def test_schedule_runs_page_newest_first(api: Api) -> None:
    body = {"id": "r", "flow_id": "three", "cron": "0 * * * *", "overlap": "allow"}
    assert (await api["acme"].post("/api/v1/schedules", json=body)).status_code == 201
    now = api.clock.now()
    window = {"start": (now - timedelta(hours=6)).isoformat(), "end": now.isoformat()}
    filled = await api["acme"].post("/api/v1/schedules/r/backfill", json=window)
    assert filled.status_code == 200 and len(filled.json()["items"]) == 7  # both ends
    pages = await _all_pages(api["acme"], "/api/v1/schedules/r/runs", 4)
    times = _ids(pages, "scheduled_for")
    assert [len(p) for p in pages] == [4, 3]
    assert times == sorted({r["scheduled_for"] for r in filled.json()["items"]}, reverse=True)


async def test_triggers_and_forms_page_by_id(api: Api) -> None:
    for n in range(5):
        await make_trigger(api, id=f"hook-{n}")
        made = await api["acme"].post("/api/v1/forms", json={**FORM, "id": f"form-{n}"})
        assert made.status_code == 201, made.text
    triggers = await _all_pages(api["acme"], "/api/v1/triggers", 2)
    assert _ids(triggers) == [f"hook-{n}" for n in range(5)]
    assert all("secret" not in t for page in triggers for t in page)
    forms = await _all_pages(api["acme"], "/api/v1/forms", 3)
    assert _ids(forms) == [f"form-{n}" for n in range(5)]
    assert await _all_pages(api["globex"], "/api/v1/triggers", 2) == [[]]


async def test_form_submissions_page_newest_first(api: Api) -> None:
    made = await api["acme"].post("/api/v1/forms", json={**FORM, "id": "beta"})
    assert made.status_code == 201, made.text
    for n in range(5):
        api.clock.advance(1 if n % 2 else 0)  # some share a time: the id breaks the tie
        sent = await api["anonymous"].post(
            "/forms/beta",
            content=urllib.parse.urlencode({**GOOD, "name": f"Ada {n}"}),
            headers=URLENC,
        )
        assert sent.status_code in (200, 303), sent.text
    pages = await _all_pages(api["acme"], "/api/v1/forms/beta/submissions", 2)
    subs = [s for page in pages for s in page]
    assert len(subs) == 5 and len({s["id"] for s in subs}) == 5
    keys = [(s["created_at"], s["id"]) for s in subs]
    assert keys == sorted(keys, reverse=True)


async def test_tables_page_by_name(api: Api) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    for name in ("c_t", "a_t", "b_t"):
        made = await api["admin"].post("/api/v1/tables", json={"name": name, "schema": schema})
        assert made.status_code == 201, made.text
    pages = await _all_pages(api["reader"], "/api/v1/tables", 2)
    assert _ids(pages, "name") == ["a_t", "b_t", "c_t"]


async def test_tasks_page_newest_first(api: Api) -> None:
    started = []
    for _ in range(5):
        made = await api["acme"].post("/api/v1/executions", json={"flow_id": "inbox"})
        assert made.status_code in (200, 201, 202), made.text
        started.append(made.json()["id"])
        await api.engine.run_until_idle()  # its task is created now
        api.clock.advance(1)
    pages = await _all_pages(api["acme"], "/api/v1/tasks", 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [t["execution_id"] for page in pages for t in page] == started[::-1]
    assert await _all_pages(api["globex"], "/api/v1/tasks", 2) == [[]]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/schedules",
        "/api/v1/schedules/s/runs",
        "/api/v1/triggers",
        "/api/v1/forms",
        "/api/v1/forms/f/submissions",
        "/api/v1/tables",
        "/api/v1/tasks",
    ],
)
async def test_bad_or_foreign_cursors_are_400(api: Api, path: str) -> None:
    from flowmonkey.stores.cursors import encode_cursor, encode_key

    foreign = encode_key("elsewhere", "x")
    execution_cursor = encode_cursor(api.clock.now(), "ex")
    for cursor in ("garbage!", "", foreign, execution_cursor, "W10="):
        answer = await api["admin"].get(path, params={"cursor": cursor})
        assert_problem(answer, 400, "BAD_CURSOR")

"""The dashboard's schedules, triggers and forms screens: tenancy, actions, scopes."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.ui.conftest import csrf_of


async def _made(api: Api) -> None:
    for who, suffix in (("acme", "a"), ("globex", "g")):
        client = api[who]
        schema = {"type": "object", "properties": {"n": {"type": "string"}}}
        bodies = {
            "/api/v1/schedules": {"id": f"nightly-{suffix}", "flow_id": "three",
                                  "cron": "0 2 * * *"},
            "/api/v1/triggers": {"id": f"hook-{suffix}", "flow_id": "three"},
            "/api/v1/forms": {"id": f"signup-{suffix}", "title": f"<i>Sign up {suffix}</i>",
                              "flow_id": "three", "schema": schema},
        }  # fmt: skip
        answers = [await client.post(path, json=body) for path, body in bodies.items()]
        assert all(a.status_code == 201 for a in answers), [a.text for a in answers]


async def test_lists_show_only_the_keys_tenant(api: Api, people: dict[str, Any]) -> None:
    await _made(api)
    client = people["acme"]
    schedules = await client.get("/ui/schedules")
    assert "nightly-a" in schedules.text and "nightly-g" not in schedules.text
    assert "0 2 * * *" in schedules.text
    triggers = await client.get("/ui/triggers")
    assert "POST /hooks/hook-a" in triggers.text and "hook-g" not in triggers.text
    forms = await client.get("/ui/forms")
    assert 'href="/forms/signup-a"' in forms.text and "signup-g" not in forms.text
    assert "&lt;i&gt;Sign up a&lt;/i&gt;" in forms.text
    assert (await client.get("/ui/schedules/nightly-g")).status_code == 404
    admin = await people["admin"].get("/ui/schedules")
    assert "nightly-a" in admin.text and "nightly-g" in admin.text


async def test_schedule_page_pause_unpause_and_run_now(api: Api, people: dict[str, Any]) -> None:
    await _made(api)
    client = people["acme"]
    page = await client.get("/ui/schedules/nightly-a")
    assert page.status_code == 200 and page.text.count("<time datetime=") == 5  # next 5 times
    token = csrf_of(page.text)
    paused = await client.post("/ui/schedules/nightly-a/pause", data={"csrf": token})
    assert paused.status_code == 303
    stored = await api.engine.store.get_schedule("nightly-a")
    assert stored is not None and stored.paused
    assert "Unpause" in (await client.get("/ui/schedules/nightly-a")).text
    await client.post("/ui/schedules/nightly-a/unpause", data={"csrf": token})
    stored = await api.engine.store.get_schedule("nightly-a")
    assert stored is not None and not stored.paused
    ran = await client.post("/ui/schedules/nightly-a/trigger", data={"csrf": token})
    assert ran.status_code == 303 and "started" in ran.headers["location"]
    runs = await client.get("/ui/schedules/nightly-a")
    assert "started" in runs.text and 'href="/ui/executions/' in runs.text
    forged = await client.post("/ui/schedules/nightly-a/pause", data={"csrf": "x"})
    assert forged.status_code == 403
    theirs = await client.post("/ui/schedules/nightly-g/pause", data={"csrf": token})
    assert theirs.status_code == 404
    unknown = await client.post("/ui/schedules/nightly-a/explode", data={"csrf": token})
    assert unknown.status_code == 404


async def test_read_only_key_gets_no_schedule_actions(api: Api, people: dict[str, Any]) -> None:
    await _made(api)
    page = await people["reader"].get("/ui/schedules/nightly-a")
    assert page.status_code == 200 and "Run now" not in page.text
    refused = await people["reader"].post(
        "/ui/schedules/nightly-a/pause", data={"csrf": csrf_of(page.text)}
    )
    assert refused.status_code == 403
    stored = await api.engine.store.get_schedule("nightly-a")
    assert stored is not None and not stored.paused

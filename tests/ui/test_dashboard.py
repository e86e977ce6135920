"""The dashboard over HTTP (no browser): sign-in, sessions, CSRF, scopes, tenancy,
escaping, every screen, and the actions with their error paths."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import httpx
from tests.api.conftest import Api
from tests.ui.conftest import browser, csrf_of, sign_in

from flowmonkey import FlowBuilder


async def settled(api: Api) -> None:
    """Wait for the steps the app runs in the background (inline mode)."""
    state = api.app.state.flowmonkey
    while state.background:
        await asyncio.gather(*list(state.background), return_exceptions=True)


async def start(api: Api, who: str, flow_id: str, data: Any = None, **extra: Any) -> str:
    answer = await api[who].post(
        "/api/v1/executions", json={"flow_id": flow_id, "input": data or {}, "wait": 1, **extra}
    )
    assert answer.status_code == 201, answer.text
    await settled(api)
    return str(answer.json()["id"])


async def status_of(api: Api, execution_id: str) -> str:
    found = await api.engine.store.get(execution_id, history=False)
    assert found is not None
    return found.status.value


# -- sign-in and sessions ------------------------------------------------------------


async def test_pages_ask_for_sign_in_then_return_to_the_page_asked_for(api: Api) -> None:
    client = browser(api)
    first = await client.get("/ui/executions", params={"status": "failed"})
    assert first.status_code == 303
    assert first.headers["location"] == "/ui/login?next=/ui/executions%3Fstatus%3Dfailed"
    answer = await sign_in(client, api.keys["acme"], "/ui/executions?status=failed")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/executions?status=failed"
    cookie = answer.headers["set-cookie"]
    assert "fm_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/ui/" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    page = await client.get("/ui/executions?status=failed")
    assert page.status_code == 200 and "<h1>Executions</h1>" in page.text
    await client.aclose()


async def test_session_cookie_is_secure_over_https(api: Api) -> None:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="https://testserver"
    )
    answer = await sign_in(client, api.keys["acme"])
    assert "Secure" in answer.headers["set-cookie"]
    await client.aclose()


async def test_sign_in_refuses_bad_keys_forged_forms_and_foreign_next_urls(api: Api) -> None:
    client = browser(api)
    wrong = await sign_in(client, "fmk_not-a-key")
    assert wrong.status_code == 401 and "Unknown API key" in wrong.text
    assert "fm_session" not in wrong.headers.get("set-cookie", "")
    forged = await client.post(
        "/ui/login", data={"key": api.keys["acme"], "token": "guess", "next": "/ui/flows"}
    )
    assert forged.status_code == 403
    away = await sign_in(client, api.keys["acme"], "https://evil.example/")
    assert away.headers["location"] == "/ui/executions"
    await client.aclose()


async def test_revoked_key_is_signed_out_at_once(api: Api, people: dict[str, Any]) -> None:
    client = people["acme"]
    assert (await client.get("/ui/flows")).status_code == 200
    record = await api.engine.store.find_api_key(_hash(api.keys["acme"]))
    await api.engine.store.revoke_api_key(record.id, now=api.clock.now())
    again = await client.get("/ui/flows")
    assert again.status_code == 303
    assert again.headers["location"].startswith("/ui/login?next=/ui/flows")
    form = await client.get(again.headers["location"])
    assert "revoked" in form.text


async def test_expired_session_goes_to_sign_in_then_back(api: Api, people: dict[str, Any]) -> None:
    client = people["acme"]
    execution_id = await start(api, "acme", "three")
    api.clock.advance(timedelta(hours=9))  # past ui_session_ttl (8 h); the key lasts 1 day
    answer = await client.get(f"/ui/executions/{execution_id}")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ui/login?next=/ui/executions/{execution_id}"
    assert "expired" in (await client.get(answer.headers["location"])).text
    back = await sign_in(client, api.keys["acme"], f"/ui/executions/{execution_id}")
    assert back.headers["location"] == f"/ui/executions/{execution_id}"
    assert (await client.get(back.headers["location"])).status_code == 200


async def test_sign_out_ends_the_session(people: dict[str, Any]) -> None:
    client = people["acme"]
    page = await client.get("/ui/flows")
    out = await client.post("/ui/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert (await client.get("/ui/flows")).status_code == 303


# -- CSRF, scopes, tenancy ------------------------------------------------------------


async def test_every_post_needs_the_sessions_csrf_token(api: Api, people: dict[str, Any]) -> None:
    execution_id = await start(api, "acme", "approval")
    client = people["acme"]
    for token in (None, "forged", csrf_of((await people["globex"].get("/ui/flows")).text)):
        data = {"csrf": token} if token else {}
        answer = await client.post(f"/ui/executions/{execution_id}/cancel", data=data)
        assert answer.status_code == 403, token
        assert "CSRF" in answer.text
    assert await status_of(api, execution_id) == "waiting"
    refused = await client.post("/ui/logout", data={"csrf": "forged"})
    assert refused.status_code == 403


async def test_read_only_key_sees_no_actions_and_the_server_refuses_them(
    api: Api, people: dict[str, Any]
) -> None:
    execution_id = await start(api, "acme", "approval")
    page = await people["reader"].get(f"/ui/executions/{execution_id}")
    assert page.status_code == 200
    assert "/cancel" not in page.text and "/resume" not in page.text
    writer_page = await people["acme"].get(f"/ui/executions/{execution_id}")
    assert "/cancel" in writer_page.text and "/resume" in writer_page.text
    token = csrf_of(page.text)  # the sign-out form carries it
    for action in ("cancel", "resume", "retry", "signal"):
        answer = await people["reader"].post(
            f"/ui/executions/{execution_id}/{action}", data={"csrf": token}
        )
        assert answer.status_code == 403, action
    assert await status_of(api, execution_id) == "waiting"


async def test_other_tenants_executions_are_404_and_never_listed(
    api: Api, people: dict[str, Any]
) -> None:
    theirs = await start(api, "globex", "three")
    ours = await start(api, "acme", "three")
    for url in (
        f"/ui/executions/{theirs}",
        f"/ui/executions/{theirs}/events",
        "/ui/executions/nope",
    ):
        answer = await people["acme"].get(url)
        assert answer.status_code == 404, url
        assert "Not found" in answer.text and "text/html" in answer.headers["content-type"]
    listing = await people["acme"].get("/ui/executions")
    assert ours in listing.text and theirs not in listing.text
    assert re.search(r"completed <strong>1</strong>", listing.text)
    searched = await people["acme"].get("/ui/executions", params={"q": theirs})
    assert searched.status_code == 200 and f'href="/ui/executions/{theirs}"' not in searched.text
    token = csrf_of(listing.text)
    cancel = await people["acme"].post(f"/ui/executions/{theirs}/cancel", data={"csrf": token})
    assert cancel.status_code == 404
    assert theirs in (await people["admin"].get("/ui/executions")).text


# -- security headers and escaping ------------------------------------------------------


async def test_pages_send_a_csp_without_inline_scripts_and_escape_values(
    api: Api, people: dict[str, Any]
) -> None:
    evil = "<script>alert('x')</script>"
    execution_id = await start(api, "acme", "approval", {"note": evil}, correlation_id=evil)
    page = await people["acme"].get(f"/ui/executions/{execution_id}")
    assert page.status_code == 200
    assert evil not in page.text
    assert "&lt;script&gt;alert(" in page.text
    csp = page.headers["content-security-policy"]
    script_src = re.search(r"script-src ([^;]+)", csp)
    assert script_src and script_src.group(1).strip() == "'self'"
    assert "frame-ancestors 'none'" in csp
    for url in ("/ui/executions", "/ui/flows", "/ui/flows/approval", "/ui/inbox", "/ui/tables",
                f"/ui/executions/{execution_id}"):  # fmt: skip
        html = (await people["acme"].get(url)).text
        tags = re.findall(r"<script\b[^>]*>", html)
        assert tags and all(" src=" in tag for tag in tags), url  # no inline script
        assert not re.search(r"<[^>]+\son[a-z]+=", html), url  # no inline handlers


# -- screens ----------------------------------------------------------------------------


async def test_executions_list_filters_counts_search_and_pages(
    api: Api, people: dict[str, Any]
) -> None:
    ids = []
    for i in range(55):
        api.clock.advance(1)  # distinct creation times: the list is newest first
        ids.append(await start(api, "acme", "three", correlation_id=f"order-{i}"))
    api.clock.advance(1)
    failed = await start(api, "acme", "gated")
    client = people["acme"]
    first = await client.get("/ui/executions")
    assert failed in first.text and ids[-1] in first.text and ids[0] not in first.text
    assert re.search(r"completed <strong>55</strong>", first.text)
    assert re.search(r"failed <strong>1</strong>", first.text)
    older = re.search(r'href="(/ui/executions\?[^"]*cursor=[^"]+)"', first.text)
    assert older
    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert ids[0] in second.text and failed not in second.text
    only_failed = await client.get("/ui/executions", params={"status": "failed"})
    assert failed in only_failed.text and ids[-1] not in only_failed.text
    by_flow = await client.get("/ui/executions", params={"flow_id": "gated"})
    assert failed in by_flow.text and ids[0] not in by_flow.text
    by_id = await client.get("/ui/executions", params={"q": ids[3]})
    assert by_id.status_code == 303 and by_id.headers["location"] == f"/ui/executions/{ids[3]}"
    by_correlation = await client.get("/ui/executions", params={"q": "order-7"})
    assert ids[7] in by_correlation.text and ids[8] not in by_correlation.text
    rows = await client.get("/ui/executions-rows", params={"status": "failed"})
    assert failed in rows.text and "<html" not in rows.text
    bad = await client.get("/ui/executions", params={"status": "nonsense"})
    assert bad.status_code == 400


async def test_execution_page_shows_graph_timeline_context_and_events(
    api: Api, people: dict[str, Any]
) -> None:
    execution_id = await start(api, "acme", "gated")
    page = (await people["acme"].get(f"/ui/executions/{execution_id}")).text
    assert 'class="mermaid"' in page and "flowchart TD" in page
    assert "class s_g failed" in page  # the failed step is coloured
    assert 'class="bar failure"' in page  # its attempt on the timeline
    assert "CLOSED" in page and "the gate is closed" in page
    assert "execution.failed" in page  # the event log, readable without JavaScript
    assert "Retry from the failed step" in page and "Cancel execution" not in page
    done = await start(api, "acme", "three")
    page = (await people["acme"].get(f"/ui/executions/{done}")).text
    assert all(f"class s_{s} visited" in page for s in "abc")


async def test_live_events_stream_with_the_session_cookie(api: Api, people: dict[str, Any]) -> None:
    execution_id = await start(api, "acme", "three")
    answer = await people["acme"].get(f"/ui/executions/{execution_id}/events")
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "event: execution.completed" in answer.text
    tail = await people["acme"].get(f"/ui/executions/{execution_id}/events", params={"after": 2})
    assert "id: 1\n" not in tail.text and "execution.completed" in tail.text


async def test_resume_with_malformed_json_keeps_the_text_then_resumes(
    api: Api, people: dict[str, Any]
) -> None:
    execution_id = await start(api, "acme", "approval")
    client = people["acme"]
    token = csrf_of((await client.get(f"/ui/executions/{execution_id}")).text)
    typed = '{"approved": yes}'
    bad = await client.post(
        f"/ui/executions/{execution_id}/resume", data={"csrf": token, "data": typed}
    )
    assert bad.status_code == 400
    assert "not valid JSON" in bad.text
    assert "{&#34;approved&#34;: yes}</textarea>" in bad.text
    assert await status_of(api, execution_id) == "waiting"
    good = await client.post(
        f"/ui/executions/{execution_id}/resume", data={"csrf": token, "data": '{"approved": true}'}
    )
    assert good.status_code == 303
    await settled(api)
    assert await status_of(api, execution_id) == "completed"
    found = await api.engine.store.get(execution_id, history=False)
    assert found is not None and found.context["answer"] == {"approved": True}


async def test_retry_cancel_and_signal_from_the_page(api: Api, people: dict[str, Any]) -> None:
    client = people["acme"]
    failed = await start(api, "acme", "gated")
    token = csrf_of((await client.get(f"/ui/executions/{failed}")).text)
    retried = await client.post(f"/ui/executions/{failed}/retry", data={"csrf": token})
    assert retried.status_code == 303 and retried.headers["location"].endswith("done=retried")
    await settled(api)
    found = await api.engine.store.get(failed, history=False)
    assert found is not None and found.run_number == 2
    again = await client.post(f"/ui/executions/{failed}/retry", data={"csrf": token})
    assert again.status_code == 409 or found.status.value == "failed"

    waiting = await start(api, "acme", "approval")
    wrong = await client.post(
        f"/ui/executions/{waiting}/signal",
        data={"csrf": token, "step_id": "nope", "payload": "{}"},
    )
    assert wrong.status_code == 400 and 'role="alert"' in wrong.text
    signalled = await client.post(
        f"/ui/executions/{waiting}/signal", data={"csrf": token, "step_id": "ask", "payload": "1"}
    )
    assert signalled.status_code == 303
    await settled(api)
    assert await status_of(api, waiting) == "completed"

    to_cancel = await start(api, "acme", "approval")
    cancelled = await client.post(f"/ui/executions/{to_cancel}/cancel", data={"csrf": token})
    assert cancelled.status_code == 303
    assert await status_of(api, to_cancel) == "cancelled"
    twice = await client.post(f"/ui/executions/{to_cancel}/cancel", data={"csrf": token})
    assert twice.status_code == 409


async def test_inbox_task_form_shows_validation_errors_then_completes(
    api: Api, people: dict[str, Any]
) -> None:
    form = {
        "type": "object",
        "properties": {
            "comment": {"type": "string", "minLength": 3, "title": "Comment"},
            "score": {"type": "integer"},
            "ok": {"type": "boolean"},
        },
        "required": ["comment"],
    }
    await api.engine.save_flow(
        FlowBuilder("review").user_task("check", "Check it", form=form).build()
    )
    nested = {"type": "object", "properties": {"items": {"type": "array", "items": {}}}}
    await api.engine.save_flow(FlowBuilder("raw").user_task("fill", "Fill it", form=nested).build())
    execution_id = await start(api, "acme", "review")
    await start(api, "globex", "review")
    client = people["acme"]
    inbox = await client.get("/ui/inbox")
    links = re.findall(r'href="/ui/inbox/([^"]+)"', inbox.text)
    assert len(links) == 1  # globex's task is not listed
    task_url = f"/ui/inbox/{links[0]}"
    page = await client.get(task_url)
    assert 'for="f-comment"' in page.text and 'type="checkbox"' in page.text
    token = csrf_of(page.text)
    bad = await client.post(task_url, data={"csrf": token, "comment": "no", "score": "x"})
    assert bad.status_code == 422
    assert "Enter a whole number." in bad.text  # the shared form renderer's messages
    assert "Too short." in bad.text and 'value="no"' in bad.text and 'value="x"' in bad.text
    assert 'id="f-score" name="score"' in bad.text and 'aria-invalid="true"' in bad.text
    assert await status_of(api, execution_id) == "waiting"
    done = await client.post(
        task_url, data={"csrf": token, "comment": "fine", "score": "2", "ok": "on"}
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/ui/executions/{execution_id}?done=completed"
    await settled(api)
    assert await status_of(api, execution_id) == "completed"
    reader = await people["reader"].get(task_url)
    assert "Complete task" not in reader.text
    # A schema the form renderer does not draw: the data is typed as JSON.
    raw_id = await start(api, "acme", "raw")
    inbox = await client.get("/ui/inbox")
    raw_task = re.search(r'href="/ui/inbox/([^"]+)">Fill it', inbox.text)
    assert raw_task
    raw_url = f"/ui/inbox/{raw_task.group(1)}"
    assert 'name="data"' in (await client.get(raw_url)).text
    typo = await client.post(raw_url, data={"csrf": token, "data": '{"items": [}'})
    assert typo.status_code == 422 and "not valid JSON" in typo.text
    assert "{&#34;items&#34;: [}</textarea>" in typo.text
    wrong = await client.post(raw_url, data={"csrf": token, "data": '{"items": 3}'})
    assert "items" in wrong.text  # the engine's schema problem, by field
    assert wrong.status_code == 422 and await status_of(api, raw_id) == "waiting"
    right = await client.post(raw_url, data={"csrf": token, "data": '{"items": [{}]}'})
    assert right.status_code == 303


async def test_flows_and_tables_screens(api: Api, people: dict[str, Any]) -> None:
    schema = {"type": "object", "properties": {"sku": {"type": "string"}}}
    created = await api["admin"].post("/api/v1/tables", json={"name": "stock", "schema": schema})
    assert created.status_code == 201
    await api["acme"].post("/api/v1/tables/stock/rows", json={"data": {"sku": "<b>A1</b>"}})
    await api["globex"].post("/api/v1/tables/stock/rows", json={"data": {"sku": "G9"}})
    client = people["acme"]
    flows = await client.get("/ui/flows")
    assert 'href="/ui/flows/approval"' in flows.text
    flow = await client.get("/ui/flows/approval")
    assert "flowchart TD" in flow.text and "&#34;initialStepId&#34;" in flow.text
    assert (await client.get("/ui/flows/missing")).status_code == 404
    tables = await client.get("/ui/tables")
    assert 'href="/ui/tables/stock"' in tables.text
    rows = await client.get("/ui/tables/stock")
    assert "&lt;b&gt;A1&lt;/b&gt;" in rows.text and "G9" not in rows.text
    assert (await client.get("/ui/tables/nope")).status_code == 404


async def test_dev_mode_needs_no_sign_in(tmp_path: Any) -> None:
    from tests.api.conftest import open_api

    async for api in open_api(tmp_path, auth=False):
        client = browser(api)
        page = await client.get("/ui/executions")
        assert page.status_code == 200 and "Sign out" not in page.text
        await client.aclose()


def _hash(secret: str) -> str:
    from flowmonkey.model.keys import hash_key

    return hash_key(secret)


async def test_vendored_assets_are_served_from_the_package(api: Api) -> None:
    client = browser(api)
    for path, marker in (
        ("/ui/static/vendor/htmx.min.js", b"htmx"),
        ("/ui/static/vendor/mermaid.min.js", b"mermaid"),
        ("/ui/static/app.js", b"EventSource"),
        ("/ui/static/app.css", b"prefers-color-scheme: dark"),
    ):
        answer = await client.get(path)  # no sign-in needed for static files
        assert answer.status_code == 200 and marker in answer.content, path
    await client.aclose()


async def test_unknown_dashboard_pages_are_an_html_404(api: Api, people: dict[str, Any]) -> None:
    assert (await browser(api).get("/ui/nowhere")).status_code == 303  # sign in first
    answer = await people["acme"].get("/ui/nowhere/at/all")
    assert answer.status_code == 404 and "There is no such page." in answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in answer.headers


async def test_sign_in_is_rate_limited_per_client(tmp_path: Any) -> None:
    from tests.api.conftest import open_api

    from flowmonkey.api import ApiSettings

    settings = ApiSettings(public_rate_limit=0.001, public_rate_burst=2)
    async for api in open_api(tmp_path, settings=settings):
        client = browser(api)
        codes = [(await sign_in(client, "fmk_guess")).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        await client.aclose()


async def test_a_form_posted_after_expiry_returns_to_its_page(
    api: Api, people: dict[str, Any]
) -> None:
    execution_id = await start(api, "acme", "approval")
    client = people["acme"]
    page_url = f"/ui/executions/{execution_id}"
    token = csrf_of((await client.get(page_url)).text)
    api.clock.advance(timedelta(hours=9))
    answer = await client.post(
        f"{page_url}/cancel",
        data={"csrf": token},
        headers={"Referer": f"http://testserver{page_url}"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ui/login?next={page_url}"
    assert await status_of(api, execution_id) == "waiting"  # nothing done while signed out
    elsewhere = await client.post(
        f"{page_url}/cancel", data={"csrf": token}, headers={"Referer": "http://evil.example/ui/x"}
    )
    assert elsewhere.headers["location"] == "/ui/login?next=/ui/executions"

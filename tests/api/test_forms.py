"""Forms: management, the accessible public page, validation with values kept, honeypot,
per-IP rate limit, CAPTCHA against a local stand-in verifier, dedupe, limits, closing."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from flowmonkey.api import ApiSettings
from flowmonkey.api.captcha import CaptchaSettings, configure_captcha
from flowmonkey.handlers.secrets import DictSecretProvider

from .conftest import Api, open_api

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Your name", "minLength": 2},
        "email": {"type": "string", "format": "email", "description": "We reply here."},
        "size": {"enum": ["S", "M", "L"]},
        "count": {"type": "integer", "minimum": 1},
        "price": {"type": "number"},
        "agree": {"type": "boolean"},
        "when": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "email", "size"],
}
FORM = {
    "id": "signup",
    "title": "Sign up",
    "description": "Join the beta.",
    "schema": SCHEMA,
    "flow_id": "three",
    "ui": {"order": ["email", "name"]},
    "success_message": "Thanks, see you soon.",
}
GOOD = {
    "name": "Ada",
    "email": "ada@example.org",
    "size": "M",
    "count": "2",
    "price": "9.5",
    "agree": "on",
    "when": "2026-05-01",
    "tags": "red\nblue\n",
}
URLENC = {"content-type": "application/x-www-form-urlencoded"}


async def make_form(api: Api, **fields: object) -> None:
    answer = await api["acme"].post("/api/v1/forms", json={**FORM, **fields})
    assert answer.status_code == 201, answer.text


def post(api: Api, form: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    return api["anonymous"].post(
        f"/forms/{form}", content=urllib.parse.urlencode(data), headers=URLENC
    )


async def test_the_page_is_labelled_and_works_without_javascript(api: Api) -> None:
    await make_form(api)
    page = await api["anonymous"].get("/forms/signup")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script" not in html  # no JavaScript needed (no CAPTCHA configured)
    assert '<form method="post" action="/forms/signup"' in html
    assert html.index('name="email"') < html.index('name="name"')  # ui order
    assert '<label for="f-name">Your name' in html
    assert (
        'type="email" id="f-email" name="email" required aria-required="true" '
        'aria-describedby="f-email-help"' in html
    )
    assert '<p class="help" id="f-email-help">We reply here.</p>' in html
    assert '<select id="f-size" name="size" required aria-required="true">' in html
    assert 'type="text" inputmode="numeric" id="f-count" name="count"' in html
    assert 'inputmode="decimal" id="f-price"' in html and 'type="checkbox" id="f-agree"' in html
    assert 'type="date" id="f-when"' in html and '<textarea rows="4" id="f-tags"' in html
    assert 'tabindex="-1" autocomplete="off"' in html  # the honeypot stays out of tab order
    assert (await api["anonymous"].get("/forms/ghost")).status_code == 404


async def test_a_good_submission_starts_the_flow_and_is_stored(api: Api) -> None:
    await make_form(api)
    answer = await post(api, "signup", GOOD)
    assert answer.status_code == 200 and "Thanks, see you soon." in answer.text
    subs = (await api["acme"].get("/api/v1/forms/signup/submissions")).json()["items"]
    assert len(subs) == 1
    assert subs[0]["data"] == {
        "name": "Ada",
        "email": "ada@example.org",
        "size": "M",
        "count": 2,
        "price": 9.5,
        "agree": True,
        "when": "2026-05-01",
        "tags": ["red", "blue"],
    }
    execution = await api.engine.get(subs[0]["execution_id"])
    assert execution is not None and execution.context["count"] == 2
    assert execution.tenant_id == "acme" and execution.metadata["form_id"] == "signup"
    as_json = await api["anonymous"].post(
        "/forms/signup", json={"name": "Bob", "email": "bob@example.org", "size": "S"}
    )
    assert as_json.status_code == 201 and as_json.json()["execution_id"]
    assert (await api["globex"].get("/api/v1/forms/signup/submissions")).status_code == 404


async def test_every_error_is_shown_beside_its_field_with_the_values_kept(api: Api) -> None:
    await make_form(api)
    bad = {
        "name": "A",
        "email": "not-an-email",
        "count": "two",
        "price": "cheap",
        "when": "05/01/2026",
        "colour": "red",
    }
    answer = await post(api, "signup", bad)
    assert answer.status_code == 422
    html = answer.text
    assert "<title>Error: Sign up</title>" in html and 'role="alert"' in html
    for name in ("name", "email", "size", "count", "price", "when"):
        assert f'id="f-{name}-error"' in html, name
        assert (
            f'aria-describedby="f-{name}-error"' in html or f"f-{name}-help f-{name}-error" in html
        )
    assert "There are 7 problems" in html and "Unknown fields: colour" in html
    assert 'value="not-an-email"' in html and 'value="two"' in html and 'value="A"' in html
    assert 'value="05/01/2026"' in html
    json_bad = await api["anonymous"].post("/forms/signup", json={"name": 3, "size": "XL"})
    assert json_bad.status_code == 422
    assert {e["path"] for e in json_bad.json()["errors"]} == {"name", "email", "size"}
    assert (await api["acme"].get("/api/v1/forms/signup/submissions")).json()["items"] == []
    assert (await api.engine.list(limit=5)).items == []


async def test_a_filled_honeypot_is_dropped_silently(api: Api) -> None:
    await make_form(api)
    answer = await post(api, "signup", {**GOOD, "website_hp": "http://spam.example"})
    assert answer.status_code == 200 and "Thanks" in answer.text
    assert (await api["acme"].get("/api/v1/forms/signup/submissions")).json()["items"] == []
    assert (await api.engine.list(limit=5)).items == []


async def test_dedupe_max_submissions_and_open_until(api: Api) -> None:
    await make_form(api, dedupe_on=["email"], max_submissions=2)
    assert (await post(api, "signup", GOOD)).status_code == 200
    again = await post(api, "signup", {**GOOD, "email": " ADA@example.org", "name": "Ada L"})
    assert again.status_code == 409 and "already been submitted" in again.text
    racing = await asyncio.gather(
        *(post(api, "signup", {**GOOD, "email": "x@example.org"}) for _ in range(5))
    )
    assert sorted(r.status_code for r in racing) == [200, 409, 409, 409, 409]
    full = await post(api, "signup", {**GOOD, "email": "late@example.org"})
    assert full.status_code == 410
    assert len((await api.engine.list(limit=10)).items) == 2
    past = api.clock.now().isoformat()
    await api["acme"].patch(
        "/api/v1/forms/signup", json={"open_until": past, "max_submissions": None}
    )
    assert (await api["anonymous"].get("/forms/signup")).status_code == 410
    assert (await post(api, "signup", {**GOOD, "email": "z@example.org"})).status_code == 410


async def test_bad_form_definitions_list_every_problem(api: Api) -> None:
    answer = await api["acme"].post(
        "/api/v1/forms",
        json={
            "id": "f",
            "title": "",
            "flow_id": "ghost",
            "schema": {"type": "object", "properties": {"file": {"type": "object"}}},
            "dedupe_on": ["nope"],
            "max_submissions": 0,
            "open_until": "soon",
            "captcha": {"provider": "mystery", "site_key": "k", "secret": "raw-secret-value"},
        },
    )
    assert answer.status_code == 422
    paths = sorted(e["path"] for e in answer.json()["errors"])
    assert paths == [
        "captcha.provider",
        "captcha.secret",
        "dedupe_on",
        "flow_id",
        "max_submissions",
        "open_until",
        "schema.properties.file",
        "title",
    ]
    assert (await api["acme"].get("/api/v1/forms")).json()["items"] == []


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Api]:
    settings = ApiSettings(public_rate_limit=0.01, public_rate_burst=3)
    async for opened in open_api(tmp_path, settings=settings):
        yield opened


async def test_posts_are_rate_limited_per_ip(limited: Api) -> None:
    await make_form(limited)
    codes = [(await post(limited, "signup", {"name": "x"})).status_code for _ in range(4)]
    assert codes == [422, 422, 422, 429]


class _Verifier(BaseHTTPRequestHandler):
    """A stand-in for the providers' siteverify endpoints."""

    seen: ClassVar[list[dict[str, list[str]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        self.seen.append(form)
        ok = form.get("secret") == ["s3cret"] and form.get("response") == ["good-token"]
        body = json.dumps({"success": ok}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def verifier() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Verifier)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/siteverify"
    finally:
        server.shutdown()
        server.server_close()


async def test_captcha_is_verified_server_side(api: Api, verifier: str) -> None:
    configure_captcha(
        api.app,
        CaptchaSettings(
            secrets=DictSecretProvider({"TURNSTILE": "s3cret"}), verify_urls={"turnstile": verifier}
        ),
    )
    await make_form(
        api, captcha={"provider": "turnstile", "site_key": "site-1", "secret": "TURNSTILE"}
    )
    page = (await api["anonymous"].get("/forms/signup")).text
    assert 'class="cf-turnstile" data-sitekey="site-1"' in page
    assert "s3cret" not in page
    shown = (await api["acme"].get("/api/v1/forms/signup")).json()
    assert shown["captcha"]["secret"] == "TURNSTILE"  # a name, never the value
    missing = await post(api, "signup", GOOD)
    assert missing.status_code == 422 and "Complete the CAPTCHA" in missing.text
    wrong = await post(api, "signup", {**GOOD, "cf-turnstile-response": "forged"})
    assert wrong.status_code == 422 and "not accepted" in wrong.text
    right = await post(api, "signup", {**GOOD, "cf-turnstile-response": "good-token"})
    assert right.status_code == 200, right.text
    assert _Verifier.seen[-1]["remoteip"] == ["127.0.0.1"]
    assert len((await api.engine.list(limit=5)).items) == 1

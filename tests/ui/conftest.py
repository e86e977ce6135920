"""The dashboard under test: the API's app (SQLite, keys per tenant) driven by httpx with
cookies, signed in through the real sign-in form."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import Api, open_api

_TOKEN = re.compile(r'name="token" value="([^"]+)"')
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def browser(api: Api) -> httpx.AsyncClient:
    """A cookie-keeping client with no API key header (a person's browser)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="http://testserver"
    )


async def sign_in(
    client: httpx.AsyncClient, key: str, next_url: str = "/ui/executions"
) -> httpx.Response:
    """Fill in and post the sign-in form; the answer (a 303 when the key is good)."""
    form = await client.get("/ui/login", params={"next": next_url})
    token = _TOKEN.search(form.text)
    assert token, form.text
    return await client.post(
        "/ui/login", data={"key": key, "next": next_url, "token": token.group(1)}
    )


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    found = _CSRF.search(html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The app with auth, over SQLite."""
    async for opened in open_api(tmp_path):
        yield opened


@pytest.fixture
async def people(api: Api) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """A signed-in browser per key name of ``api``."""
    clients = {}
    for name, key in api.keys.items():
        client = browser(api)
        answer = await sign_in(client, key)
        assert answer.status_code == 303, answer.text
        clients[name] = client
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()

"""A real dashboard in a real browser: uvicorn serving ``create_app`` over SQLite in a
thread, and one headless Debian ``chromium`` (``/usr/bin/chromium``) driven by Playwright
for the whole session.

Without Playwright or chromium these tests skip with the reason, except under CI (the
``CI`` environment variable set), where they fail: ``.ci/run`` installs chromium.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import FLOWS, gate, noop, wait

from flowmonkey import FlowBuilder
from flowmonkey.api import create_app
from flowmonkey.definitions.registry import FlowRegistry
from flowmonkey.engine.engine import Engine
from flowmonkey.handlers.registry import HandlerRegistry
from flowmonkey.model.keys import new_api_key
from flowmonkey.stores.sqlite import SqliteStore

CHROMIUM = os.environ.get("FLOWMONKEY_CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SHOTS = Path(__file__).parents[2] / "docs" / "img"
"""Where the screenshots go with ``FLOWMONKEY_SCREENSHOTS=1`` (``make screenshots``);
otherwise each run still takes them, into a temporary folder, so the tree stays clean."""
REVIEW_FORM = {
    "type": "object",
    "properties": {
        "comment": {"type": "string", "minLength": 3, "title": "Comment"},
        "approved": {"type": "boolean", "title": "Approved"},
    },
    "required": ["comment"],
}


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@dataclass
class Site:
    """The running dashboard: its URL and API keys (admin, acme, reader)."""

    url: str
    keys: dict[str, str]

    def api(self, who: str = "acme") -> httpx.Client:
        """A REST client with ``who``'s key (the "other client" of the tests)."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=10
        )

    def start(self, flow_id: str, who: str = "acme", **extra: Any) -> str:
        """Start an execution and wait until it settles (up to 5 s)."""
        with self.api(who) as client:
            answer = client.post(
                "/api/v1/executions", json={"flow_id": flow_id, "input": {}, "wait": 5, **extra}
            )
            assert answer.status_code == 201, answer.text
            return str(answer.json()["id"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _make_keys(path: Path) -> dict[str, str]:
    store = SqliteStore(path)
    await store.initialize()
    keys = {}
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    for name, tenant, scopes in (
        ("admin", "*", ("read", "write", "admin")),
        ("acme", "acme", ("read", "write")),
        ("reader", "acme", ("read",)),
    ):
        secret, record = new_api_key(
            name=name, tenant=tenant, scopes=scopes, now=now, expires_in=timedelta(days=1)
        )
        await store.create_api_key(record)
        keys[name] = secret
    await store.close()
    return keys


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The dashboard served on a free loopback port for the browser tests."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(reason)
    import uvicorn

    path = tmp_path_factory.mktemp("browser") / "ui.db"
    keys = asyncio.run(_make_keys(path))
    handlers = HandlerRegistry()
    for h in (noop, wait, gate):
        handlers.register(h)
    flows = FlowRegistry()
    for f in [
        *FLOWS,
        FlowBuilder("review").user_task("check", "Check the order", form=REVIEW_FORM).build(),
    ]:
        flows.register(f)
    engine = Engine(SqliteStore(path), handlers, flows)
    port = _free_port()
    config = uvicorn.Config(
        create_app(engine), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(200):  # the server thread says nothing; poll its readiness flag
        if server.started:
            started.set()
            break
        started.wait(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Site(url=f"http://127.0.0.1:{port}", keys=keys)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def chromium(site: Site) -> Iterator[Any]:
    """One headless chromium for every browser test (they live in one module: the
    sync Playwright API keeps an event loop on this thread until it stops, and the
    asyncio tests that follow need the thread back)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


def sign_in(chromium: Any, site: Site, who: str, next_path: str = "/ui/executions") -> Any:
    """A new browser context signed in as ``who``, on ``next_path``."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    watch_csp(page)
    page.goto(site.url + next_path)
    assert "/ui/login" in page.url
    page.get_by_label("API key").fill(site.keys[who])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{next_path.split('?')[0]}*")
    return page


def watch_csp(page: Any) -> None:
    """Fail the test on any Content-Security-Policy violation the page reports."""
    page.csp_errors = []

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            page.csp_errors.append(message.text)

    page.on("console", on_console)


def check_accessibility(page: Any) -> None:
    """Run axe-core on the page: no serious or critical violation."""
    # Evaluated through the DevTools protocol: the page's CSP (scripts from 'self' only)
    # stays on, and axe's own script is not a page script.
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document)")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url}: " + "; ".join(bad)


def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    """Save the page for docs/dashboard.md (see ``SHOTS``)."""
    folder = SHOTS if os.environ.get("FLOWMONKEY_SCREENSHOTS") else _scratch()
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)


def _scratch() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / "flowmonkey-screenshots"

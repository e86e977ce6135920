"""Run the standard-handlers example end to end, with everything on 127.0.0.1.

Starts a demo JSON API (stdlib ``http.server``) and a debugging SMTP server (aiosmtpd)
that prints what it receives, then runs ``flow.yaml`` on a SQLite store. The secrets
come from the environment (``FLOWMONKEY_SECRET_<NAME>``, the default provider); this
script sets demo values when they are missing.

    python examples/standard_handlers/run.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from flowmonkey import Engine, EngineOptions, Flow, FlowRegistry, HandlerRegistry
from flowmonkey.stores.sqlite import SqliteStore

HERE = Path(__file__).resolve().parent
ORDERS = {
    "A-1001": {
        "id": "A-1001",
        "customer": {"name": "Ann", "email": "ann@example.com"},
        "items": [{"sku": "BOOK-1", "price": 12.5}, {"sku": "PEN-2", "price": 2.0}],
    }
}


class DemoApi(BaseHTTPRequestHandler):
    """GET /orders/<id> with a bearer token: the order as JSON."""

    def do_GET(self) -> None:
        expected = f"Bearer {os.environ['FLOWMONKEY_SECRET_DEMO_API_TOKEN']}"
        order = ORDERS.get(self.path.rsplit("/", 1)[-1])
        if self.headers.get("Authorization") != expected:
            status, body = 401, {"error": "unauthorised"}
        elif order is None:
            status, body = 404, {"error": "no such order"}
        else:
            status, body = 200, order
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        print(f"[demo api]  {format % args}")


class PrintingInbox:
    """aiosmtpd handler: print every message it receives."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content.decode()  # type: ignore[attr-defined]
        print(f"[smtp]      mail for {', '.join(envelope.rcpt_tos)}:")  # type: ignore[attr-defined]
        for line in content.splitlines():
            print(f"[smtp]        {line}")
        return "250 Message accepted"


def check_login(server: object, session: object, envelope: object, mechanism: str,
                data: object) -> AuthResult:
    password = os.environ["FLOWMONKEY_SECRET_SMTP_PASSWORD"].encode()
    ok = isinstance(data, LoginPassword) and data.password == password
    return AuthResult(success=ok, handled=False)


async def main() -> int:
    os.environ.setdefault("FLOWMONKEY_SECRET_DEMO_API_TOKEN", "demo-token-123")
    os.environ.setdefault("FLOWMONKEY_SECRET_SMTP_PASSWORD", "demo-smtp-password")
    logging.basicConfig(level=logging.INFO, format="[log]       %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's chatter

    api = ThreadingHTTPServer(("127.0.0.1", 0), DemoApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    with socket.socket() as probe:  # a free port (aiosmtpd cannot take port 0)
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(PrintingInbox(), hostname="127.0.0.1", port=smtp_port,
                      authenticator=check_login, auth_require_tls=False)
    smtp.start()
    try:
        definition = yaml.safe_load((HERE / "flow.yaml").read_text())
        definition["steps"]["mail"]["config"]["port"] = smtp_port
        flow = Flow.from_dict(definition)
        with tempfile.TemporaryDirectory() as folder:
            store = SqliteStore(Path(folder) / "demo.db")
            # The demo servers are on 127.0.0.1, which the SSRF guard refuses by default.
            options = EngineOptions(http_allow=("127.0.0.1",))
            async with Engine(store, HandlerRegistry(), FlowRegistry([flow]),
                              options=options) as engine:
                result = await engine.start(
                    "order-summary",
                    {"api": f"http://127.0.0.1:{api.server_address[1]}", "order_id": "A-1001"},
                )
        print(f"\nstatus:  {result.status.value}")
        if result.error is not None:
            print(f"error:   {result.error.code}: {result.error.message}")
        print("summary:", json.dumps(result.context.get("summary")))
        print("mail:   ", json.dumps(result.context.get("mail")))
        return 0 if result.status.value == "completed" else 1
    finally:
        smtp.stop()
        api.shutdown()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""A real HTTP server for the standard-handler tests: uvicorn on a loopback address.

Raw ASGI (no framework) so every byte on the wire is under the test's control:
streaming without a Content-Length, redirects, Retry-After, slow answers that notice
the client going away.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn

Send = Any
Receive = Any


class DemoApp:
    """Routes by path; records what it saw for the tests to assert on."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        self.disconnected = threading.Event()
        self.slow_started = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path: str = scope["path"]
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.hits[path] = self.hits.get(path, 0) + 1
        self.requests.append(
            {
                "path": path,
                "method": scope["method"],
                "headers": headers,
                "query": query,
                "body": body.decode(errors="replace"),
            }
        )
        route = path.strip("/").split("/")
        name = route[0]
        if name == "json":
            await _send(
                send, 200, orjson.dumps({"hello": "world", "items": [1, 2, 3]}), "application/json"
            )
        elif name == "echo":
            data = {
                "method": scope["method"],
                "query": query,
                "headers": headers,
                "body": body.decode(errors="replace"),
            }
            await _send(send, 200, orjson.dumps(data), "application/json")
        elif name == "text":
            await _send(send, 200, "plain text é".encode(), "text/plain; charset=utf-8")
        elif name == "status":
            extra = []
            if "retry_after" in query:
                extra.append((b"retry-after", query["retry_after"].encode()))
            await _send(send, int(route[1]), b'{"error": "nope"}', "application/json", extra)
        elif name == "flaky":
            # Fails ``fail`` times with 503, then answers 200.
            if self.hits[path] <= int(query.get("fail", "1")):
                await _send(send, 503, b"busy", "text/plain")
            else:
                await _send(send, 200, b'{"ok": true}', "application/json")
        elif name == "binary":
            await _send(send, 200, bytes(range(256)), "application/octet-stream")
        elif name == "badjson":
            await _send(send, 200, b"{not json", "application/json")
        elif name == "latin":
            await _send(send, 200, b"\xff\xfe\x00", "text/plain; charset=utf-8")
        elif name == "redirect":
            await _send(send, 302, b"", "text/plain", [(b"location", query["to"].encode())])
        elif name == "stream":
            # No Content-Length: the client can only count.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            chunk = b"x" * int(query.get("size", "1024"))
            for _ in range(int(query.get("chunks", "10"))):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b""})
        elif name == "big":
            size = int(query.get("size", "2048"))
            await _send(send, 200, b"y" * size, "text/plain")
        elif name == "slow":
            self.slow_started.set()
            waiter = asyncio.ensure_future(receive())
            done, _ = await asyncio.wait({waiter}, timeout=float(query.get("delay", "30")))
            if done and waiter.result()["type"] == "http.disconnect":
                self.disconnected.set()
                return
            waiter.cancel()
            await _send(send, 200, b'{"late": true}', "application/json")
        else:
            await _send(send, 404, b"not found", "text/plain")


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Served:
    """A running server: ``url(path)`` builds URLs to it."""

    def __init__(self, app: DemoApp, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path


@contextmanager
def serve(app: Any, host: str = "127.0.0.1") -> Iterator[tuple[str, int]]:
    """Run ``app`` under uvicorn in a thread on ``host`` and a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    ready = threading.Event()

    def wait_started() -> None:
        while not server.started and thread.is_alive():
            ready.wait(0.01)

    wait_started()
    try:
        yield host, port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

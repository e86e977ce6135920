"""A tiny HTTP health endpoint for workers (stdlib ``asyncio`` only, no framework).

``GET /healthz`` answers ``200`` with a JSON body while the worker is ready (store open,
loops running, last store call succeeded) and ``503`` otherwise. Orchestrators use it as a
readiness/liveness probe; ``flowmonkey worker --check`` uses ``check_health``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["HealthServer", "check_health"]

HealthProbe = Callable[[], tuple[bool, dict[str, Any]]]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_PATHS = ("/healthz", "/readyz")
_READ_TIMEOUT = 5.0
_MAX_HEADER_LINES = 100


class HealthServer:
    """Serves ``probe()`` as ``GET /healthz`` on ``host:port`` (``port=0``: any free port).

    Args:
        probe: returns ``(healthy, body)``; called for every request.
        host: interface to bind.
        port: TCP port; after :meth:`start`, :attr:`port` is the bound one.
    """

    def __init__(self, probe: HealthProbe, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._probe = probe
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind and start serving. Raises ``OSError`` if the port is taken."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop serving. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                request_line = await reader.readline()
                # Drain the headers; nothing in them matters here.
                for _ in range(_MAX_HEADER_LINES):
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
            status, body = self._respond(request_line)
            payload = orjson.dumps(body)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + payload)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that hangs up or stalls gets nothing; the worker is unaffected
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _respond(self, request_line: bytes) -> tuple[int, dict[str, Any]]:
        parts = request_line.decode("latin-1").split()
        if len(parts) < 2:
            return 404, {"error": "bad request"}
        method, path = parts[0], parts[1].split("?", 1)[0]
        if path not in _PATHS:
            return 404, {"error": f"no such path {path}; use /healthz"}
        if method not in ("GET", "HEAD"):
            return 405, {"error": "use GET"}
        healthy, body = self._probe()
        return (200 if healthy else 503), body


async def check_health(port: int, host: str = "127.0.0.1", *, timeout: float = 3.0) -> bool:
    """True when a worker's health endpoint at ``host:port`` answers ``200``."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(
                    f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
                )
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    parts = status_line.split()
    return len(parts) >= 2 and parts[1] == b"200"

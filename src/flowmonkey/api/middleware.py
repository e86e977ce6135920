"""One pure-ASGI middleware for every HTTP request: request id, body-size limit, content
type, JSON request log line, and the request metrics. The two hottest routes (start an
execution, receive a webhook) are then answered by their lean twins (``fastpath``).

Pure ASGI (not ``BaseHTTPMiddleware``) so it adds microseconds, not a task per request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowmonkey.api.fastpath import FastRoutes
from flowmonkey.api.problems import Problem, problem_response

if TYPE_CHECKING:
    from flowmonkey.api.state import ApiState

__all__ = ["RequestMiddleware"]

access_log = logging.getLogger("flowmonkey.api.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
"""An ``X-Request-Id`` we echo back: anything else (CR/LF, spaces, long) is replaced."""
_JSON_TYPES = (b"application/json", b"application/problem+json")
_YAML_TYPES = (b"application/yaml", b"application/x-yaml", b"text/yaml")


class RequestMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, state: ApiState, fast: FastRoutes | None = None) -> None:
        self.app = app
        self.state = state
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _headers(scope)
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status_box = [500]
        raw_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", raw_id)]
            await send(message)

        problem = self._refuse(scope, headers)
        try:
            if problem is None and _streamed_body(scope, headers):
                receive, problem = await self._buffer(receive)
            if problem is not None:
                await problem_response(problem)(scope, receive, send_with_id)
            elif self.fast is not None and (twin := self.fast.match(scope)) is not None:
                await self.fast.serve(self.state, twin, scope, receive, send_with_id, self.app)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status_box[0], started, request_id)

    def _too_large(self) -> Problem:
        limit = self.state.settings.max_body_bytes
        return Problem(413, f"The body is over the limit of {limit} bytes.", code="BODY_TOO_LARGE")

    def _refuse(self, scope: Scope, headers: dict[bytes, bytes]) -> Problem | None:
        """413 by Content-Length, 415 by Content-Type, before reading anything."""
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return None
        length = headers.get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.state.settings.max_body_bytes:
                    return self._too_large()
            except ValueError:
                return Problem(400, "Content-Length is not a number.", code="BAD_REQUEST")
        path: str = scope["path"]
        if not path.startswith("/api/"):
            return None
        if length in (None, b"0") and b"transfer-encoding" not in headers:
            return None  # no body: routes whose body is optional accept that
        kind = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if kind in _JSON_TYPES:
            return None
        if kind in _YAML_TYPES and path.rstrip("/") == "/api/v1/flows":
            return None
        return Problem(
            415,
            "Send the body as application/json"
            + (" or application/yaml." if path.rstrip("/") == "/api/v1/flows" else "."),
            code="UNSUPPORTED_MEDIA_TYPE",
        )

    async def _buffer(self, receive: Receive) -> tuple[Receive, Problem | None]:
        """Read a body sent without Content-Length, up to the limit, and replay it."""
        limit = self.state.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return receive, self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replaying() -> Message:
            return replay.pop() if replay else await receive()

        return replaying, None

    def _record(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        metrics = self.state.metrics
        if metrics is not None:
            metrics.observe_request(template, method, status, elapsed)
        if self.state.settings.request_log and access_log.isEnabledFor(logging.INFO):
            principal = scope.get("state", {}).get("principal")
            line: dict[str, Any] = {
                "ts": datetime.now(UTC).isoformat(),
                "level": "info",
                "msg": "request",
                "request_id": request_id,
                "method": method,
                "path": scope["path"],
                "route": template,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "client": (scope.get("client") or ("", 0))[0],
                "key_id": getattr(principal, "key_id", None),
            }
            access_log.info(orjson.dumps(line).decode())


def _streamed_body(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """A request whose body has no announced length (chunked)."""
    return scope["method"] in ("POST", "PUT", "PATCH") and b"content-length" not in headers


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", ())}

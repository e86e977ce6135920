"""``http``: one HTTP request on the engine's shared httpx client, behind the SSRF guard.

Success when the status is in ``expect`` (default: any 2xx). The body is parsed when it
is JSON, decoded when it is text, and refused when it is binary; it is read as a stream
and the request fails with ``HTTP_TOO_LARGE`` as soon as it passes
``max_response_bytes``. Redirects are followed by this handler (not by httpx) only when
``follow_redirects`` is set, and every hop goes through the guard again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.standard.common import (
    DURATION_SCHEMA,
    INPUT_ERROR,
    StandardHandler,
    duration_problems,
    render,
    scope,
    seconds,
    services_of,
)
from flowmonkey.handlers.standard.ssrf import HTTP_BLOCKED, AddressBlocked
from flowmonkey.model.result import Result

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HTTP_BINARY",
    "HTTP_BLOCKED",
    "HTTP_CONNECT",
    "HTTP_INVALID_JSON",
    "HTTP_STATUS",
    "HTTP_TIMEOUT",
    "HTTP_TOO_LARGE",
    "HttpConfig",
    "HttpHandler",
    "RequestSpec",
    "perform",
]

HTTP_STATUS = "HTTP_STATUS"
HTTP_TIMEOUT = "HTTP_TIMEOUT"
HTTP_CONNECT = "HTTP_CONNECT"
HTTP_TOO_LARGE = "HTTP_TOO_LARGE"
HTTP_BINARY = "HTTP_BINARY"
HTTP_INVALID_JSON = "HTTP_INVALID_JSON"

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
EXCERPT = 500
"""Characters of the response body kept in an ``HTTP_STATUS`` error."""
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_RETRYABLE = frozenset({408, 429})
_TEXT_TYPES = ("text/", "application/xml", "application/x-www-form-urlencoded")
_JSON_SUFFIX = ("application/json", "+json")

_HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")
_SCALAR = {"type": ["string", "number", "boolean"]}
REQUEST_PROPERTIES: dict[str, Any] = {
    "method": {"enum": [*METHODS, *(m.lower() for m in METHODS)]},
    "url": {"type": "string", "minLength": 1},
    "headers": {"type": "object", "additionalProperties": _SCALAR},
    "query": {
        "type": "object",
        "additionalProperties": {"oneOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
    },
    "json": {},
    "body": {"type": "string"},
    "timeout": DURATION_SCHEMA,
    "max_response_bytes": {"type": "integer", "minimum": 1},
    "follow_redirects": {"type": "boolean"},
    "max_redirects": {"type": "integer", "minimum": 0, "maximum": 30},
    "expect": {
        "type": "array",
        "items": {"type": "integer", "minimum": 100, "maximum": 599},
        "minItems": 1,
    },
    "response": {"enum": ["auto", "json", "text"]},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """The config of an ``http`` step (after schema checks; templates not yet rendered)."""

    url: str
    method: str = "GET"
    headers: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    has_json: bool = False
    body: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    """Seconds for the whole request (connect, send, every redirect, the body)."""
    max_response_bytes: int = DEFAULT_MAX_BYTES
    follow_redirects: bool = False
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    expect: tuple[int, ...] | None = None
    """Success statuses; ``None`` means 200-299."""
    response: str = "auto"
    """``auto`` (JSON when the content type says so, else text), ``json`` or ``text``."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HttpConfig:
        """Build from a (schema-checked) config mapping.

        Raises:
            ValueError: ``timeout`` is not a duration.
        """
        expect = config.get("expect")
        return cls(
            url=config["url"],
            method=str(config.get("method", "GET")).upper(),
            headers=dict(config.get("headers") or {}),
            query=dict(config.get("query") or {}),
            json=config.get("json"),
            has_json="json" in config,
            body=config.get("body"),
            timeout=seconds(config.get("timeout"), DEFAULT_TIMEOUT),
            max_response_bytes=int(config.get("max_response_bytes", DEFAULT_MAX_BYTES)),
            follow_redirects=bool(config.get("follow_redirects", False)),
            max_redirects=int(config.get("max_redirects", DEFAULT_MAX_REDIRECTS)),
            expect=tuple(expect) if expect else None,
            response=config.get("response", "auto"),
        )


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """A rendered request, ready to send."""

    method: str
    url: Any
    """An ``httpx.URL`` (parsed and checked once)."""
    headers: dict[str, str]
    query: dict[str, Any]
    content: bytes | None
    config: HttpConfig


def request_problems(config: Mapping[str, Any]) -> list[str]:
    """Static checks beyond the schema (shared with ``webhook``)."""
    problems = duration_problems(config, "timeout")
    if "json" in config and "body" in config:
        problems.append("json/body: give one of them, not both")
    url = config.get("url")
    if isinstance(url, str) and "${" not in url and "{{" not in url:
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme not in ("http", "https"):
            problems.append(f"url: only http and https URLs are allowed, got {url!r}")
    return problems


def build_request(cfg: HttpConfig, ctx: HandlerContext) -> RequestSpec | Result:
    """Render the templates of ``cfg``; a ``Result`` failure when the request is unusable."""
    data = scope(ctx)
    url = render(cfg.url, ctx, data)
    if not isinstance(url, str):
        return _bad(f"url must render to a string, got {type(url).__name__}")
    headers: dict[str, str] = {}
    for name, value in render(cfg.headers, ctx, data).items():
        if value is None:
            continue  # a placeholder for a missing value leaves the header out
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        if any(c in name or c in text for c in "\r\n\0"):
            return _bad(f'header "{name.strip()}" holds a line break or NUL')
        headers[name] = text
    query: dict[str, Any] = {}
    for name, value in render(cfg.query, ctx, data).items():
        if value is None:
            continue  # as for headers
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str | int | float) for v in items):
            return _bad(f'query "{name}" must render to text, a number or a list of them')
        query[name] = value
    content: bytes | None = None
    if cfg.has_json:
        try:
            content = orjson.dumps(render(cfg.json, ctx, data))
        except TypeError as exc:
            return _bad(f"json is not JSON data: {exc}")
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif cfg.body is not None:
        body = render(cfg.body, ctx, data)
        content = (body if isinstance(body, str) else orjson.dumps(body).decode()).encode()
    parsed = services_of(ctx).parsed_url(url, parse_url)
    if isinstance(parsed, Result):
        return parsed
    return RequestSpec(cfg.method, parsed, headers, query, content, cfg)


def check_url(url: str) -> Result | None:
    """A failure for a URL that is malformed or not http(s), else ``None``."""
    parsed = parse_url(url)
    return parsed if isinstance(parsed, Result) else None


def parse_url(url: str) -> httpx.URL | Result:
    """The parsed URL, or the failure for a URL that is malformed or not http(s)."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return _bad(f"invalid URL: {exc}")
    if parsed.scheme not in ("http", "https"):
        return Result.failure(
            HTTP_BLOCKED,
            f"only http and https URLs are allowed, got scheme {parsed.scheme or '(none)'!r}",
            retryable=False,
        )
    host = parsed.host
    if not host:
        return _bad(f"invalid URL (no host): {url}")
    if not (_HOST.match(host) or (":" in host and _is_ip(host))):
        return _bad(f"invalid URL (bad host {host!r}): {url}")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return _bad(f"invalid URL (port {parsed.port}): {url}")
    return parsed


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _bad(message: str) -> Result:
    return Result.failure(INPUT_ERROR, message, retryable=False)


async def perform(ctx: HandlerContext, spec: RequestSpec) -> Result:
    """Send ``spec`` on the shared client; map every outcome to a ``Result``."""
    import httpx

    cfg = spec.config
    client = services_of(ctx).http_client
    try:
        async with asyncio.timeout(cfg.timeout):
            return await _exchange(client, spec)
    except TimeoutError:
        return Result.failure(HTTP_TIMEOUT, f"no complete response within {cfg.timeout:g}s")
    except AddressBlocked as exc:
        return Result.failure(HTTP_BLOCKED, str(exc), retryable=False)
    except httpx.TimeoutException as exc:
        return Result.failure(HTTP_TIMEOUT, f"{type(exc).__name__}: {str(exc) or 'timed out'}")
    except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return _bad(f"cannot send the request: {exc}")
    except httpx.TransportError as exc:
        reason = str(exc) or "connection failed"
        return Result.failure(HTTP_CONNECT, f"{type(exc).__name__}: {reason}")


async def _exchange(client: httpx.AsyncClient, spec: RequestSpec) -> Result:
    import httpx

    cfg = spec.config
    timeout = httpx.Timeout(cfg.timeout)
    request = client.build_request(
        spec.method,
        spec.url,
        headers=spec.headers,
        params=spec.query or None,
        content=spec.content,
        timeout=timeout,
    )
    hops = 0
    while True:
        response = await client.send(request, stream=True)
        try:
            following = cfg.follow_redirects and response.next_request is not None
            if following:
                if hops >= cfg.max_redirects:
                    return Result.failure(
                        HTTP_STATUS,
                        f"more than {cfg.max_redirects} redirects",
                        details={"status": response.status_code, "url": str(request.url)},
                        retryable=False,
                    )
                nxt = response.next_request
                assert nxt is not None
                blocked = check_url(str(nxt.url))
                if blocked is not None:
                    return blocked
                hops += 1
                request = nxt
                continue
            return await _outcome(response, cfg)
        finally:
            await response.aclose()


async def _outcome(response: httpx.Response, cfg: HttpConfig) -> Result:
    status = response.status_code
    ok = status in cfg.expect if cfg.expect is not None else 200 <= status < 300
    if not ok:
        excerpt = await _excerpt(response, cfg.max_response_bytes)
        retryable = status in _RETRYABLE or status >= 500
        delay = _retry_after(response.headers.get("retry-after")) if retryable else None
        return Result.failure(
            HTTP_STATUS,
            f"{response.request.method} {response.request.url} answered {status}",
            details={"status": status, "body": excerpt},
            retryable=retryable,
            retry_after=delay,
        )
    raw = await _read_capped(response, cfg.max_response_bytes)
    if isinstance(raw, Result):
        return raw
    body = _decode(raw, response, cfg.response)
    if isinstance(body, Result):
        return body
    headers: dict[str, str] = {}
    for key, value in response.headers.multi_items():
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Result.success({"status": status, "headers": headers, "body": body})


async def _read_capped(response: httpx.Response, cap: int) -> bytes | Result:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        return _too_large(cap, f"Content-Length is {declared}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > cap:
            return _too_large(cap, f"more than {cap} bytes were sent")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(cap: int, why: str) -> Result:
    return Result.failure(
        HTTP_TOO_LARGE, f"response larger than max_response_bytes={cap} ({why})", retryable=False
    )


async def _excerpt(response: httpx.Response, cap: int) -> str:
    """The start of an error response's body, as text (never more than ``cap`` read)."""
    limit = min(cap, 64 * 1024)
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    text = data[:limit].decode(response.encoding or "utf-8", errors="replace")
    return text[:EXCERPT]


def _decode(raw: bytes, response: httpx.Response, mode: str) -> Any:
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    is_json = content_type.startswith(_JSON_SUFFIX[0]) or content_type.endswith(_JSON_SUFFIX[1])
    if mode == "json" or (mode == "auto" and is_json):
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Result.failure(
                HTTP_INVALID_JSON,
                f"response is not valid JSON ({exc}); content type {content_type or '(none)'}",
                details={"status": response.status_code, "body": _safe_excerpt(raw)},
                retryable=False,
            )
    if mode == "auto" and content_type and not content_type.startswith(_TEXT_TYPES):
        return _binary(content_type, response.status_code)
    try:
        return raw.decode(response.charset_encoding or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return _binary(content_type or "(none)", response.status_code)


def _binary(content_type: str, status: int) -> Result:
    return Result.failure(
        HTTP_BINARY,
        f"binary response refused (content type {content_type}); "
        "the http handler returns JSON or text only",
        details={"status": status},
        retryable=False,
    )


def _safe_excerpt(raw: bytes) -> str:
    return raw[:EXCERPT].decode("utf-8", errors="replace")


def _retry_after(value: str | None) -> timedelta | None:
    """``Retry-After`` as a delay: seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - datetime.now(UTC), timedelta(0))


class HttpHandler(StandardHandler):
    """Send one HTTP request (httpx, shared keep-alive client, SSRF guard)."""

    type = "http"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": REQUEST_PROPERTIES,
        "required": ["url"],
        "additionalProperties": False,
    }

    def validate_config(self, config: Mapping[str, Any]) -> list[str]:
        """Durations, ``json`` xor ``body``, literal URLs with an http(s) scheme."""
        return request_problems(config)

    async def execute(self, ctx: HandlerContext) -> Result:
        """Render, send, read (capped), decode."""
        try:
            cfg = HttpConfig.from_config(ctx.config)
        except ValueError as exc:
            return _bad(str(exc))
        spec = build_request(cfg, ctx)
        if isinstance(spec, Result):
            return spec
        return await perform(ctx, spec)

"""Lean twins of the hottest routes: ``POST /api/v1/executions`` and ``POST /hooks/{id}``.

A request to one of them skips Starlette's exception middleware, the router's matching
and FastAPI's dependency solving (about two thirds of the framework's cost of a POST):
``RequestMiddleware`` hands it here with its body read, and the twin calls the same code
the FastAPI route calls (``start_answer``, ``receive_hook``), so the answers are the same.
The FastAPI routes stay registered: they document the API (OpenAPI) and answer whatever
the twin gives back to them. The start twin gives back every body its one precompiled
pydantic validation refuses, so FastAPI's own parsing answers each such error exactly
as before (400 malformed JSON, 422 listing every problem, and auth checked first where
FastAPI checks it first).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from flowmonkey import errors
from flowmonkey.api import routes_executions, routes_hooks
from flowmonkey.api.auth import caller, check_scope
from flowmonkey.api.problems import Problem, problem_response
from flowmonkey.api.schemas import StartBody

if TYPE_CHECKING:
    from flowmonkey.api.state import ApiState

__all__ = ["FastRoutes"]

log = logging.getLogger("flowmonkey.api")

_START = TypeAdapter(StartBody)
"""``StartBody``'s validator, built once (validates the raw JSON bytes in one call)."""

Handler = Callable[["ApiState", Scope, Receive, bytes, dict[str, str]], Awaitable[Response | None]]
"""A twin: the answer, or ``None`` to let the FastAPI route answer instead."""


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header (as Starlette's ``Headers.get``), latin-1 decoded."""
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _start(
    state: ApiState, scope: Scope, receive: Receive, raw: bytes, params: dict[str, str]
) -> Response | None:
    try:
        body = _START.validate_json(raw)
    except ValidationError:
        return None  # FastAPI's parsing names every problem (or the JSON error)
    authorization = _header(scope, b"authorization")
    principal = check_scope(await caller(state.keys, state.limiter, authorization), "write")
    scope.setdefault("state", {})["principal"] = principal
    return await routes_executions.start_answer(
        state,
        body,
        principal,
        _header(scope, b"idempotency-key"),
        _header(scope, b"traceparent"),
    )


async def _hook(
    state: ApiState, scope: Scope, receive: Receive, raw: bytes, params: dict[str, str]
) -> Response | None:
    return await routes_hooks.receive_hook(Request(scope, receive), params["trigger_id"])


@dataclass(frozen=True, slots=True)
class _Twin:
    route: BaseRoute
    regex: re.Pattern[str] | None
    handle: Handler


def _route_of(routes: list[BaseRoute], endpoint: Callable[..., object]) -> Route:
    for route in routes:
        if isinstance(route, Route) and route.endpoint is endpoint:
            return route
    raise LookupError(f"no route serves {endpoint.__name__}")  # pragma: no cover


class FastRoutes:
    """The twins of one app. Their FastAPI routes are the ones the routers declare
    (``create_app`` includes those routers without a prefix, so a route's path is the
    request path; a mount's ``root_path`` is stripped first)."""

    def __init__(self) -> None:
        self._exact: dict[str, _Twin] | None = None
        self._hooks: _Twin | None = None

    def _build(self) -> dict[str, _Twin]:
        start = _route_of(routes_executions.router.routes, routes_executions.start_execution)
        hook = _route_of(routes_hooks.public_router.routes, routes_hooks.receive_hook)
        self._hooks = _Twin(hook, hook.path_regex, _hook)
        self._exact = {start.path: _Twin(start, None, _start)}
        return self._exact

    def match(self, scope: Scope) -> tuple[_Twin, dict[str, str]] | None:
        """The twin of this request and its path parameters, if it has one."""
        if scope["method"] != "POST":
            return None
        exact = self._exact if self._exact is not None else self._build()
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        twin = exact.get(path)
        if twin is not None:
            return twin, {}
        hooks = self._hooks
        if hooks is not None and hooks.regex is not None and path.startswith("/hooks/"):
            found = hooks.regex.match(path)
            if found is not None:
                return hooks, found.groupdict()
        return None

    async def serve(
        self,
        state: ApiState,
        found: tuple[_Twin, dict[str, str]],
        scope: Scope,
        receive: Receive,
        send: Send,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        """Answer with the twin, or hand the request (body replayed) to ``app``."""
        twin, params = found
        messages: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        replay = list(reversed(messages))

        async def replaying() -> Message:
            return replay.pop() if replay else await receive()

        if messages[-1]["type"] != "http.request":  # the client went away mid-body
            await app(scope, replaying, send)
            return
        raw = b"".join(chunks)
        scope["route"] = twin.route
        scope["path_params"] = params
        try:
            response = await twin.handle(state, scope, replaying, raw, params)
        except Problem as problem:
            response = problem_response(problem)
        except errors.FlowMonkeyError as exc:
            response = problem_response(Problem.from_error(exc))
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            response = problem_response(Problem(500, "Internal error; see the server log."))
        if response is None:
            replay = list(reversed(messages))
            await app(scope, replaying, send)
            return
        await response(scope, replaying, send)

"""RFC 9457 problem+json errors: one exception type, one mapping from engine errors.

Every error the API answers is ``application/problem+json`` with ``type, title, status,
detail, code`` and, for validation, ``errors: [{"path", "message"}]`` listing every issue
at once. Nothing here ever puts a traceback or a driver message in a response.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from flowmonkey import errors

__all__ = ["PROBLEM_TYPE", "Problem", "install_problem_handlers", "problem_response"]

log = logging.getLogger("flowmonkey.api")

PROBLEM_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

_STATUS_BY_CODE = {
    "EXECUTION_NOT_FOUND": 404,
    "FLOW_NOT_FOUND": 404,
    "TASK_NOT_FOUND": 404,
    "EXECUTION_NOT_WAITING": 409,
    "EXECUTION_TERMINAL": 409,
    "EXECUTION_NOT_FAILED": 409,
    "INVALID_SIGNAL": 409,
    "TASK_NOT_PENDING": 409,
    "IDEMPOTENCY_CONFLICT": 409,
    "LEASE_LOST": 409,
    "INVALID_RESUME_TOKEN": 404,
    "RESUME_TOKEN_EXPIRED": 410,
    "INVALID_FLOW": 422,
    "CONTEXT_LIMIT": 422,
    "CONTEXT_VALUE_TOO_LARGE": 422,
    "CONTEXT_SIZE_LIMIT": 422,
    "CONTEXT_KEY_LIMIT": 422,
    "CONTEXT_NESTING_LIMIT": 422,
    "INVALID_INPUT": 422,
    "INVALID_TASK_OUTPUT": 422,
    "HANDLER_NOT_FOUND": 422,
    "STORE_UNAVAILABLE": 503,
    "INVALID_CURSOR": 400,
}
"""HTTP status of each engine error code; an unlisted code is a 422 (bad request data)
unless it is a ``StoreError`` (503 when unreachable, else 500 without details)."""


class Problem(Exception):
    """An error answer. Raise it from a route; the app turns it into problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _TITLES.get(status, "ERROR").upper().replace(" ", "_")
        self.errors = errors
        self.headers = headers or {}

    @classmethod
    def from_error(cls, exc: errors.FlowMonkeyError) -> Problem:
        """The problem for an engine error (its ``code`` kept)."""
        status = _STATUS_BY_CODE.get(exc.code)
        if status is None:
            if isinstance(exc, errors.StoreUnavailable):
                status = 503
            elif isinstance(exc, errors.StoreError):
                log.error("store error: %s", exc.message)
                return cls(500, "The store failed; see the server log.", code=exc.code)
            else:
                status = 422
        issues: list[dict[str, str]] | None = None
        if isinstance(exc, errors.FlowValidationError):
            issues = [
                {"path": i.path, "message": i.message} for i in exc.issues if i.severity == "error"
            ]
        elif isinstance(exc.details, list) and all(isinstance(d, dict) for d in exc.details):
            issues = [
                {"path": str(d.get("path", "")), "message": str(d.get("message", d))}
                for d in exc.details
            ] or None
        detail = exc.message
        if status == 503:
            detail = "The store is unreachable; try again later."
        return cls(status, detail, code=exc.code, errors=issues)

    def body(self) -> dict[str, Any]:
        """The problem document."""
        out: dict[str, Any] = {
            "type": "about:blank",
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def problem_response(problem: Problem) -> Response:
    """Render a ``Problem`` (its extra headers included)."""
    headers = dict(problem.headers)
    if problem.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(
        orjson.dumps(problem.body()),
        status_code=problem.status,
        media_type=PROBLEM_TYPE,
        headers=headers,
    )


def _loc_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        where, rest = parts[0], parts[1:]
        return where + ("." + ".".join(rest) if rest else "")
    return ".".join(parts)


def validation_problem(exc: RequestValidationError) -> Problem:
    """422 listing every issue; unknown fields are named in their own messages."""
    issues: list[dict[str, str]] = []
    json_error: str | None = None
    for error in exc.errors():
        kind = error.get("type", "")
        loc = error.get("loc", ())
        if kind == "json_invalid":
            json_error = str(error.get("ctx", {}).get("error", "invalid JSON"))
            continue
        message = str(error.get("msg", "invalid"))
        if kind == "extra_forbidden":
            message = f'unknown field "{loc[-1]}"' if loc else "unknown field"
        elif kind == "missing":
            message = "field required"
        issues.append({"path": _loc_path(loc), "message": message})
    if json_error is not None:
        return Problem(400, f"The body is not valid JSON: {json_error}", code="MALFORMED_JSON")
    return Problem(
        422,
        f"The request is invalid ({len(issues)} problem(s)).",
        code="VALIDATION_FAILED",
        errors=issues,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error the app can raise to a problem+json answer."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_engine_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.FlowMonkeyError)
        return problem_response(Problem.from_error(exc))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem_response(validation_problem(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = str(exc.detail) or _TITLES.get(exc.status_code, "")
        problem = Problem(exc.status_code, detail, headers=dict(exc.headers or {}))
        return problem_response(problem)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(Problem(500, "Internal error; see the server log."))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(errors.FlowMonkeyError, on_engine_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)

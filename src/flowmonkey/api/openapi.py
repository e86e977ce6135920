"""The OpenAPI 3.1 document: FastAPI's, with every error answer as problem+json.

FastAPI documents its own 422 shape under ``application/json``; this API answers every
error (422 included) as ``application/problem+json`` with ``ProblemOut``'s shape, so
the document is rewritten to say exactly that, and lists the error statuses each kind
of route can give (``default`` covers the rest).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["install_openapi"]

_TITLES = {
    "400": "Malformed body, header or cursor",
    "401": "Missing, unknown, revoked or expired API key",
    "403": "The key lacks the scope, or names another tenant",
    "404": "No such resource (or another tenant's)",
    "405": "Method not allowed",
    "409": "State conflict",
    "410": "Expired",
    "413": "Body over the limit",
    "415": "Wrong Content-Type",
    "422": "Validation failed (every issue listed)",
    "429": "Rate limited (see Retry-After)",
    "503": "Store unreachable",
    "default": "An RFC 9457 problem",
}
_PUBLIC = ("/healthz", "/readyz", "/metrics")


def _statuses(path: str, method: str) -> list[str]:
    if path in _PUBLIC:
        return ["503"] if path == "/readyz" else []
    codes = ["400", "404", "422", "429", "503"]
    if not path.startswith("/api/v1/resume/"):
        codes += ["401", "403"]
    else:
        codes += ["410"]
    if method == "post":
        codes += ["409", "413", "415"]
    return sorted(set(codes))


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with the rewritten document (built once)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version="3.1.0",
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        problem = {"$ref": "#/components/schemas/ProblemOut"}
        for path, operations in doc.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for status in [*_statuses(path, method), "default"]:
                    responses[status] = {
                        "description": _TITLES.get(status, "Error"),
                        "content": {"application/problem+json": {"schema": problem}},
                    }
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        if "ProblemOut" not in schemas:
            from flowmonkey.api.schemas import ProblemOut

            schemas["ProblemOut"] = ProblemOut.model_json_schema()
        app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]

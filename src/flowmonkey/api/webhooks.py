"""Webhook triggers: validating a definition, checking a signature, mapping a request.

Signatures are GitHub-style: ``sha256=<hex HMAC-SHA256 of the raw body>`` keyed by the
trigger's secret, compared in constant time. With an ``X-Flowmonkey-Timestamp`` header
(Unix seconds, within ``TIMESTAMP_TOLERANCE`` of now) the signed message is
``<timestamp>.<body>``, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

__all__ = [
    "DEFAULT_SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TIMESTAMP_TOLERANCE",
    "check_signature",
    "check_trigger",
    "schema_errors",
    "sign",
]

DEFAULT_SIGNATURE_HEADER = "X-Flowmonkey-Signature"
TIMESTAMP_HEADER = "X-Flowmonkey-Timestamp"
TIMESTAMP_TOLERANCE = timedelta(minutes=5)
_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_FIELDS = {
    "id",
    "flow_id",
    "version",
    "input_schema",
    "input_map",
    "secret",
    "signature_header",
    "idempotency",
    "enabled",
    "tenant_id",
}


def sign(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """The signature header value a sender computes (``sha256=<hex>``)."""
    message = body if timestamp is None else timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def check_signature(
    secret: str, body: bytes, header: str | None, timestamp: str | None, now: datetime
) -> str | None:
    """``None`` when the request is signed by ``secret``; else why not (for the 401)."""
    if not header:
        return "the signature header is missing"
    if timestamp is not None:
        try:
            sent = float(timestamp)
        except ValueError:
            return f"{TIMESTAMP_HEADER} is not a Unix time"
        if abs(now.timestamp() - sent) > TIMESTAMP_TOLERANCE.total_seconds():
            return f"{TIMESTAMP_HEADER} is more than 5 minutes away from now (replayed?)"
    expected = sign(secret, body, timestamp)
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        return "the signature does not match the body"
    return None


def schema_errors(validator: Draft202012Validator, value: Any) -> list[dict[str, str]]:
    """Every JSON Schema error of ``value`` as ``{"path", "message"}``, in path order."""
    found = []
    for error in validator.iter_errors(value):
        path = "body" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        found.append({"path": path, "message": error.message})
    return sorted(found, key=lambda e: e["path"])


def check_trigger(values: dict[str, Any], *, partial: bool = False) -> list[dict[str, str]]:
    """Every problem of a trigger definition (the flow's existence is checked by the route)."""
    problems: list[dict[str, str]] = []

    def bad(path: str, message: str) -> None:
        problems.append({"path": path, "message": message})

    for key in values:
        if key not in _FIELDS or (partial and key in ("id", "tenant_id")):
            bad(key, "unknown field" if key not in _FIELDS else "cannot be changed")
    if not partial:
        for name in ("id", "flow_id"):
            if not isinstance(values.get(name), str) or not values.get(name):
                bad(name, "required (a non-empty string)")
    ident = values.get("id")
    if isinstance(ident, str) and not _ID.match(ident):
        bad("id", "letters, digits, '-', '_' and '.' only, at most 200")
    version = values.get("version")
    if version is not None and not isinstance(version, str):
        bad("version", "a string")
    schema = values.get("input_schema")
    if schema is not None:
        if not isinstance(schema, dict):
            bad("input_schema", "a JSON Schema object")
        else:
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                bad("input_schema", f"not a valid JSON Schema: {exc.message}")
    expr = values.get("input_map")
    if expr is not None and not isinstance(expr, str):
        bad("input_map", "a JMESPath string")
    elif expr is not None:
        try:
            jmespath.compile(expr)
        except JMESPathError as exc:
            bad("input_map", f"not a valid JMESPath expression: {exc}")
    secret = values.get("secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) < 16):
        bad("secret", "a string of at least 16 characters")
    header = values.get("signature_header", DEFAULT_SIGNATURE_HEADER)
    if not isinstance(header, str) or not header or not header.replace("-", "").isalnum():
        bad("signature_header", "an HTTP header name")
    idem = values.get("idempotency")
    if idem is not None:
        if not isinstance(idem, str) or not idem.startswith(("header:", "body:")):
            bad("idempotency", 'null, "header:<Name>" or "body:<JMESPath>"')
        elif idem.startswith("body:"):
            try:
                jmespath.compile(idem[5:])
            except JMESPathError as exc:
                bad("idempotency", f"not a valid JMESPath expression: {exc}")
        elif not idem[7:]:
            bad("idempotency", "header:<Name> needs a header name")
    if not isinstance(values.get("enabled", True), bool):
        bad("enabled", "true or false")
    return problems

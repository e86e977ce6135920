"""Connection plumbing of the PostgreSQL store: URLs, redaction, error translation.

Kept apart from ``postgres.py`` so the signaler, the migration code and the store share
one definition of "how flowmonkey connects" (search path, time zone, timeouts) and one
mapping from driver errors to ``errors.StoreError`` subclasses.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import PoolTimeout

from flowmonkey import errors

__all__ = [
    "DEFAULT_SCHEMA",
    "LEASE_LOST_SQLSTATE",
    "RESUME_TOKEN_SQLSTATE",
    "STORE_URL_FLAGS",
    "connect_kwargs",
    "events_channel",
    "parse_url",
    "redact",
    "translate_error",
    "url_flag",
    "validate_schema",
    "wake_channel",
]

DEFAULT_SCHEMA = "flowmonkey"

LEASE_LOST_SQLSTATE = "FM001"
"""Raised by ``fm_check`` (0001_init.sql) when a fenced UPDATE matched no row."""
RESUME_TOKEN_SQLSTATE = "FM002"
"""Raised by ``fm_check`` when ``use_resume_token`` names no active token."""

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_MAX_IDENTIFIER = 63
# Server-side states that mean "the server cannot serve us now" rather than "this
# statement failed": admin/crash shutdown, starting up, too many connections.
_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})


def validate_schema(schema: str) -> str:
    """Return ``schema`` if it is a plain identifier; ``ValueError`` otherwise.

    Only plain identifiers are accepted because the name is also passed to the server in
    the connection's ``search_path`` option, where quoting rules differ from SQL's.
    """
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"invalid PostgreSQL schema name {schema!r}: use letters, digits and "
            "underscores, starting with a letter or underscore (at most 63 characters)"
        )
    return schema


def parse_url(url: str) -> tuple[str, str]:
    """Split a ``postgresql://`` (or ``postgres://``) URL into ``(dsn, schema)``.

    The optional ``?schema=name`` query parameter selects the schema (default
    ``flowmonkey``) and is removed from the DSN handed to libpq; every other parameter
    (``sslmode``, ``application_name``...) is kept.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(
            f"not a PostgreSQL URL: {redact(url)} (expected postgresql://user@host/db)"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    kept: list[tuple[str, str]] = []
    for key, value in query:
        if key == "schema":
            schema = value
        elif key not in STORE_URL_FLAGS:  # the store's own options never reach libpq
            kept.append((key, value))
    dsn = urlunsplit(parts._replace(query=urlencode(kept)))
    return dsn, validate_schema(schema)


def redact(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (safe for messages and logs)."""
    if "://" not in dsn:
        return _KV_PASSWORD.sub(r"\1***", dsn)
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable PostgreSQL URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{k}=***" if k.lower() == "password" else f"{k}={v}" for k, v in pairs)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def connect_kwargs(schema: str, *, connect_timeout: float, application_name: str) -> dict[str, Any]:
    """Keyword arguments for every flowmonkey connection to ``schema``.

    ``search_path`` makes every unqualified table name resolve inside the schema (so one
    database can hold several isolated flowmonkey deployments, and tests isolate per
    schema), and ``timezone=UTC`` makes every ``timestamptz`` come back as a UTC datetime.
    Both ride on the startup packet: no extra round trip per connection. Connections are
    autocommit; the store writes its own ``BEGIN``/``COMMIT`` so a whole transaction fits
    in one pipelined round trip.
    """
    return {
        "autocommit": True,
        "connect_timeout": max(1, round(connect_timeout)),
        "application_name": application_name,
        "options": f"-c search_path={schema} -c timezone=UTC",
    }


STORE_URL_FLAGS = frozenset({"notify_events"})
"""Query parameters of a store URL that are store options, not libpq parameters."""


def url_flag(url: str, name: str) -> bool:
    """Whether the URL's query sets ``name`` to a true value (``1``, ``true``, ``yes``)."""
    values = [v for k, v in parse_qsl(urlsplit(url).query) if k == name]
    return bool(values) and values[-1].strip().lower() in ("1", "true", "yes", "on")


def events_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of committed events of a schema (``notify_events``)."""
    channel = f"flowmonkey_events_{schema}"
    if len(channel) > _MAX_IDENTIFIER:
        digest = hashlib.sha256(schema.encode()).hexdigest()[:16]
        channel = f"flowmonkey_events_{digest}"
    return channel


def wake_channel(schema: str) -> str:
    """Default LISTEN/NOTIFY channel of a schema (always a valid identifier length)."""
    channel = f"flowmonkey_wake_{schema}"
    if len(channel) > _MAX_IDENTIFIER:
        digest = hashlib.sha256(schema.encode()).hexdigest()[:16]
        channel = f"flowmonkey_wake_{digest}"
    return channel


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate_error(exc: BaseException, dsn: str) -> errors.FlowMonkeyError:
    """Map a driver/pool exception to the error to raise (chain it as the cause).

    A ``StoreError`` subclass, except ``InvalidResumeToken`` (the protocol's domain error).

    The fencing checks of ``0001_init.sql`` raise custom SQLSTATEs so that a whole commit
    can be pipelined in one round trip and still fail atomically; they become
    ``LeaseLost`` and ``InvalidResumeToken`` here.
    """
    if isinstance(exc, psycopg.Error):
        sqlstate = exc.sqlstate
        if sqlstate == LEASE_LOST_SQLSTATE:
            return errors.LeaseLost(exc.diag.message_primary or "?")
        if sqlstate == RESUME_TOKEN_SQLSTATE:
            return errors.InvalidResumeToken(
                exc.diag.message_primary or "token is not active for this execution"
            )
        if isinstance(exc, psycopg.OperationalError) and (
            sqlstate is None or sqlstate.startswith("08") or sqlstate in _UNAVAILABLE
        ):
            return errors.StoreUnavailable(
                f"PostgreSQL at {redact(dsn)} is unavailable: {_first_line(exc)}"
            )
        return errors.StoreError(f"PostgreSQL error: {_first_line(exc)}")
    if isinstance(exc, PoolTimeout):
        return errors.StoreUnavailable(
            f"no PostgreSQL connection available from {redact(dsn)} in time: {_first_line(exc)}"
        )
    return errors.StoreError(f"PostgreSQL store failure: {_first_line(exc)}")

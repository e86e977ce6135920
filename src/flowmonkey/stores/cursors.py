"""Listing cursors: one opaque text for a position ``(created_at, id)`` in a listing,
shared by every store (and parsed by the API before it asks one)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson

from flowmonkey import errors

__all__ = [
    "by_id_page",
    "decode_cursor",
    "decode_key",
    "decode_time_key",
    "encode_cursor",
    "encode_key",
]


def encode_cursor(created_at: datetime, execution_id: str) -> str:
    """Opaque listing cursor for ``(created_at, id)`` (shared by the stores)."""
    raw = orjson.dumps([created_at.isoformat(), execution_id])
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of ``encode_cursor``.

    Raises:
        InvalidCursor: ``cursor`` is not one ``encode_cursor`` made (any garbage, however
            shaped: it comes from users, e.g. ``flowmonkey list --cursor``).
    """
    try:
        created, ident = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        at = datetime.fromisoformat(created)
    except Exception as exc:  # base64, UTF-8, JSON, shape, ISO time: all mean "garbage"
        raise errors.InvalidCursor(str(cursor)) from exc
    # Well-formed JSON of the wrong shape would fail later, inside a store's comparison.
    if at.tzinfo is None or not isinstance(ident, str):
        raise errors.InvalidCursor(cursor)
    return at, ident


def by_id_page(
    select: str,
    params: list[Any],
    mark: str,
    *,
    tenant_id: str | None,
    after: str | None,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """``select`` (which ends in a WHERE clause) narrowed to one tenant and to ids after
    ``after``, ordered by id, at most ``limit`` rows: one keyset page of a listing by id
    (``mark`` is the driver's placeholder, ``?`` or ``%s``)."""
    sql, values = select, list(params)
    if tenant_id is not None:
        sql += f" AND tenant_id = {mark}"
        values.append(tenant_id)
    if after is not None:
        sql += f" AND id > {mark}"
        values.append(after)
    sql += " ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {mark}"
        values.append(limit)
    return sql, values


def encode_key(listing: str, *parts: str) -> str:
    """Opaque cursor for a position in ``listing`` (e.g. ``"schedules"``) given by
    ``parts`` (an id, or a time and an id); ``decode_key`` with the same ``listing``
    reads it back, so a cursor of one listing is refused by another."""
    return base64.urlsafe_b64encode(orjson.dumps([listing, *parts])).decode()


def decode_key(cursor: str, listing: str, size: int) -> list[str]:
    """The ``size`` parts of a cursor ``encode_key(listing, ...)`` made.

    Raises:
        InvalidCursor: anything else (garbage, another listing's cursor, a wrong shape).
    """
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except Exception as exc:  # base64, UTF-8, JSON: all mean "garbage"
        raise errors.InvalidCursor(str(cursor)) from exc
    if (
        not isinstance(decoded, list)
        or len(decoded) != size + 1
        or decoded[0] != listing
        or not all(isinstance(part, str) for part in decoded)
    ):
        raise errors.InvalidCursor(cursor)
    return decoded[1:]


def decode_time_key(cursor: str, listing: str) -> tuple[datetime, str]:
    """``(time, id)`` of a cursor ``encode_key(listing, time.isoformat(), id)`` made
    (``InvalidCursor`` otherwise)."""
    when, ident = decode_key(cursor, listing, 2)
    try:
        at = datetime.fromisoformat(when)
    except ValueError as exc:
        raise errors.InvalidCursor(cursor) from exc
    if at.tzinfo is None:
        raise errors.InvalidCursor(cursor)
    return at, ident

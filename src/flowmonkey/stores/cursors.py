"""Listing cursors: one opaque text for a position ``(created_at, id)`` in a listing,
shared by every store (and parsed by the API before it asks one)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson

from flowmonkey import errors

__all__ = ["by_id_page", "decode_cursor", "encode_cursor"]


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

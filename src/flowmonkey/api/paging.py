"""Cursor pagination of the API's lists (HTTP.md, Conventions): ``?limit=`` and
``?cursor=``, a body ``{"items": [...], "next_cursor": str | null}``.

Each list asks its store for one item more than ``limit`` (keyset pagination: the store
starts after the position the cursor names), so ``next_cursor`` is given exactly when
there are more. Cursors are opaque (``stores.cursors.encode_key``) and name their list:
a garbled cursor, or one of another list, is a 400 ``BAD_CURSOR`` like the executions
list's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from flowmonkey import errors
from flowmonkey.api.problems import Problem
from flowmonkey.stores.cursors import decode_key, decode_time_key, encode_key

__all__ = ["after_id", "before_time", "page_by_id", "page_by_time"]

_T = TypeVar("_T")


def _bad() -> Problem:
    return Problem(400, "The cursor is not one this API produced.", code="BAD_CURSOR")


def after_id(cursor: str | None, listing: str) -> str | None:
    """The id a cursor of ``listing`` (a list by id) continues after; 400 if bad."""
    if cursor is None:
        return None
    try:
        return decode_key(cursor, listing, 1)[0]
    except errors.InvalidCursor:
        raise _bad() from None


def before_time(cursor: str | None, listing: str) -> tuple[datetime, str] | None:
    """The ``(time, id)`` a cursor of ``listing`` (a list newest first) continues
    before; 400 if bad."""
    if cursor is None:
        return None
    try:
        return decode_time_key(cursor, listing)
    except errors.InvalidCursor:
        raise _bad() from None


def page_by_id(
    found: Sequence[_T], limit: int, listing: str, key: Callable[[_T], str]
) -> tuple[list[_T], str | None]:
    """The first ``limit`` of ``found`` (fetched with ``limit + 1``) and the cursor of
    the next page (``None``: no more)."""
    items = list(found[:limit])
    more = len(found) > limit and bool(items)
    return items, encode_key(listing, key(items[-1])) if more else None


def page_by_time(
    found: Sequence[_T], limit: int, listing: str, key: Callable[[_T], tuple[datetime, str]]
) -> tuple[list[_T], str | None]:
    """``page_by_id`` for a list ordered by ``(time, id)``, newest first."""
    items = list(found[:limit])
    if len(found) <= limit or not items:
        return items, None
    at, ident = key(items[-1])
    return items, encode_key(listing, at.isoformat(), ident)

"""Retention rules shared by the stores' ``purge``: cursors and the keep-or-purge decision.

A store reads candidates (terminal, old enough) and the trees below them however suits
its database, then hands them to ``decide``, so every store keeps and purges exactly the
same executions. See ``base.PurgeQuery`` for the rules.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores.base import PurgeQuery

__all__ = [
    "Node",
    "TERMINAL_ORDER",
    "Verdict",
    "decide",
    "decode_cursor",
    "encode_cursor",
    "idempotency_of",
    "statuses",
]

TERMINAL_ORDER = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)
"""The order a pass walks the terminal statuses in (the cursor holds a position)."""


def statuses(query: PurgeQuery) -> list[ExecutionStatus]:
    """The terminal statuses ``query`` purges, in walking order; ``ValueError`` for others."""
    if query.limit < 1:
        raise ValueError("purge limit must be >= 1")
    if query.status is None:
        return list(TERMINAL_ORDER)
    wanted = {ExecutionStatus(s) for s in query.status}
    live = sorted(str(s) for s in wanted if not s.is_terminal)
    if live:
        raise ValueError(
            f"only finished executions can be purged; {', '.join(live)} is not a final status "
            "(use completed, failed or cancelled)"
        )
    return [s for s in TERMINAL_ORDER if s in wanted]


def encode_cursor(position: int, created_at: datetime | None, execution_id: str | None) -> str:
    """Where a pass stopped: the status position and the last (created_at, id) examined
    (``None``: that status is next, from its start)."""
    created = None if created_at is None else created_at.isoformat()
    raw = orjson.dumps([position, created, execution_id])
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str | None) -> tuple[int, datetime | None, str | None]:
    """Inverse of ``encode_cursor``; ``(0, None, None)`` starts a pass."""
    if not cursor:
        return 0, None, None
    try:
        position, created, ident = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        if created is None:
            return int(position), None, None
        return int(position), datetime.fromisoformat(created), str(ident)
    except Exception as exc:
        raise ValueError(f"invalid purge cursor: {cursor!r}") from exc


@dataclass(frozen=True, slots=True)
class Node:
    """One execution of a candidate's tree, as much as the decision needs."""

    id: str
    status: str
    key: tuple[str, str, str] | None = None
    """``(tenant key, flow_id, idempotency_key)`` when the execution has a key."""
    key_expires_at: datetime | None = None


def idempotency_of(
    header: Mapping[str, Any],
) -> tuple[tuple[str, str, str] | None, datetime | None]:
    """The idempotency key of a stored header (its JSON dict) and when it expires."""
    key = header.get("idempotency_key")
    if key is None:
        return None, None
    expires = header.get("idempotency_expires_at")
    if isinstance(expires, str):
        expires = datetime.fromisoformat(expires)
    return (header.get("tenant_id") or "", str(header["flow_id"]), str(key)), expires


@dataclass(frozen=True, slots=True)
class Verdict:
    """The executions to delete and the idempotency keys to drop with them."""

    ids: list[str]
    keys: list[tuple[str, str, str, str]]
    """``(tenant key, flow_id, key, execution_id)``: dropped only while still held by
    that execution (a newer execution may have taken an expired key over)."""


_TERMINAL = frozenset(str(s) for s in TERMINAL_ORDER)


def decide(trees: Iterable[Sequence[Node]], now: datetime) -> Verdict:
    """Purge each tree (root first, then descendants) unless one of its executions is
    still live or holds an idempotency key valid at ``now``."""
    ids: list[str] = []
    keys: list[tuple[str, str, str, str]] = []
    for tree in trees:
        if any(n.status not in _TERMINAL for n in tree):
            continue
        if any(n.key is not None and n.key_expires_at is not None and n.key_expires_at > now
               for n in tree):  # fmt: skip
            continue
        for node in tree:
            ids.append(node.id)
            if node.key is not None:
                keys.append((*node.key, node.id))
    return Verdict(ids, keys)

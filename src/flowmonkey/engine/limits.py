"""Context writes: JSON encoding and limit checks (size, total, keys, depth)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from flowmonkey import errors
from flowmonkey.engine.options import ContextLimits
from flowmonkey.jsonvalues import find_non_finite, non_finite_message

__all__ = ["ContextSizes", "OutputError", "dump_value", "nesting_depth", "plan_write"]

# Datetimes and dataclasses would silently become strings/dicts in the store while the
# running step still sees the Python object; refusing them keeps reloads identical.
_DUMP_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class OutputError(ValueError):
    """A value cannot be stored (not JSON, or a path through a non-object)."""


def dump_value(value: Any, *, what: str = "value") -> bytes:
    """Encode to JSON bytes; ``OutputError`` for anything JSON cannot hold (also NaN and
    Infinity, which orjson would write as ``null``)."""
    try:
        encoded = orjson.dumps(value, option=_DUMP_OPTS)
    except TypeError as exc:
        raise OutputError(f"{what} is not JSON-serialisable: {exc}") from None
    where = find_non_finite(value, encoded)
    if where is not None:
        raise OutputError(non_finite_message(what, where))
    return encoded


def nesting_depth(value: Any, depth: int = 0) -> int:
    """``{}``/``[]`` count 1; scalars add nothing (FlowMonkey's rule)."""
    if isinstance(value, Mapping):
        if not value:
            return depth + 1
        return max(nesting_depth(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        if not value:
            return depth + 1
        return max(nesting_depth(v, depth + 1) for v in value)
    return depth


def _check_depth(key: str, value: Any, encoded: bytes, extra: int, limits: ContextLimits) -> None:
    # Cheap bound first: depth can never exceed the number of opening brackets.
    if encoded.count(b"{") + encoded.count(b"[") + extra <= limits.max_depth:
        return
    depth = nesting_depth(value) + extra
    if depth > limits.max_depth:
        raise errors.ContextNestingError(key, depth, limits.max_depth)


class ContextSizes:
    """Encoded size of each top-level context key, kept to check the total cheaply."""

    __slots__ = ("sizes", "total")

    def __init__(self, context: Mapping[str, Any]) -> None:
        self.sizes: dict[str, int] = {}
        self.total = 0
        for key, value in context.items():
            size = len(key) + 4 + len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
            self.sizes[key] = size
            self.total += size

    def remove(self, key: str) -> None:
        """Forget ``key`` (it left the context)."""
        self.total -= self.sizes.pop(key, 0)

    def update(self, key: str, encoded_len: int) -> None:
        """Record the new size of ``key``."""
        size = len(key) + 4 + encoded_len
        self.total += size - self.sizes.get(key, 0)
        self.sizes[key] = size


def plan_write(
    context: Mapping[str, Any],
    path: str,
    value: Any,
    limits: ContextLimits,
    sizes: ContextSizes,
    *,
    literal: bool = False,
) -> tuple[str, Any, bytes]:
    """Work out a write of ``value`` at dot ``path`` without touching ``context``.

    ``literal=True`` treats ``path`` as one top-level key even if it contains dots.
    Returns ``(top_key, new_top_value, encoded_top_value)``; the caller assigns
    ``context[top_key] = new_top_value`` once everything else about the step is known.

    Raises:
        OutputError: a path segment goes through a non-object, or the value is not JSON.
        ContextLimitError: a limit would be broken.
    """
    parts = [path] if literal else path.split(".")
    top = parts[0]
    if not top:
        raise OutputError(f"invalid context path {path!r}")
    encoded_value = dump_value(value, what=f"value for {path!r}")
    if len(encoded_value) > limits.max_value_bytes:
        raise errors.ContextValueTooLargeError(path, len(encoded_value), limits.max_value_bytes)
    _check_depth(path, value, encoded_value, len(parts) - 1, limits)
    if len(parts) == 1:
        new_top, encoded_top = value, encoded_value
    else:
        # Copy the dicts along the path (shallow) so a refused write changes nothing.
        existing = context.get(top)
        if existing is None:
            existing = {}
        elif not isinstance(existing, Mapping):
            raise OutputError(f"cannot write {path!r}: {top!r} is not an object")
        new_top = dict(existing)
        node = new_top
        for i, part in enumerate(parts[1:-1], start=1):
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, Mapping):
                where = ".".join(parts[: i + 1])
                raise OutputError(f"cannot write {path!r}: {where!r} is not an object")
            child = dict(child)
            node[part] = child
            node = child
        node[parts[-1]] = value
        encoded_top = dump_value(new_top, what=f"value for {top!r}")
    if top not in context and len(context) >= limits.max_keys:
        raise errors.ContextKeyLimitError(len(context) + 1, limits.max_keys)
    old = sizes.sizes.get(top, 0)
    added = len(top) + 4 + len(encoded_top)
    if sizes.total - old + added > limits.max_total_bytes:
        raise errors.ContextSizeLimitError(sizes.total - old, added, limits.max_total_bytes)
    return top, new_top, encoded_top

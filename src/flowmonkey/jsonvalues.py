"""Values that keep their meaning in JSON: NaN and Infinity are refused, never stored.

orjson (like most encoders) writes a non-finite float as ``null``, so a stored ``NaN``
would come back as ``None``. Every place that takes user values into the store (context
writes: initial context, step outputs, resume data, signal payloads, ``ctx.set``; task
outputs; checkpoints) checks them here. The check is cheap in the common case: a
non-finite float always encodes to ``null``, so only a value whose JSON contains
``null`` is checked further (by the standard library's C encoder, then a walk to name
the path of what it refused).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["find_non_finite", "non_finite_message"]


def find_non_finite(value: Any, encoded: bytes | None = None) -> str | None:
    """The dotted path (``""`` for the value itself) of the first NaN/Infinity in
    ``value``, or ``None``. ``encoded`` (its orjson bytes) skips the walk when it holds
    no ``null``."""
    if encoded is not None:
        if b"null" not in encoded:
            return None
        # Only a value holding None or a non-finite float gets here. The C encoder of the
        # standard library tells them apart some 10x faster than a walk in Python.
        try:
            json.dumps(value, allow_nan=False, check_circular=False)
        except ValueError:
            pass  # there is one: walk to name its path
        except TypeError:
            pass  # a type only orjson encodes (UUID, enum...): walk
        else:
            return None
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return path
        elif isinstance(item, Mapping):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(item))
    return None


def non_finite_message(what: str, path: str) -> str:
    """``<what> holds NaN or Infinity at <path>``: JSON has no such numbers."""
    where = f" at {path!r}" if path else ""
    return (
        f"{what} holds NaN or Infinity{where}: JSON has no such numbers "
        "(they would be stored as null); send null or a string instead"
    )

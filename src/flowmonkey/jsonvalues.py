"""Plain JSON values within limits: what a flow definition and a CLI argument must be.

Every store writes JSON with orjson, which refuses integers beyond 64 bits, strings with
lone surrogates, non-string keys, sets, bytes and nesting deeper than 254 levels, and
would write NaN and Infinity as ``null``. Finding these when a definition is loaded (or
an argument is read) turns a failure deep inside a store into a clear error with a path.

The walk is iterative and bounded: it stops at ``max_depth`` and, when ``max_bytes`` is
given, as soon as a lower bound of the encoded size passes it. Shared references (YAML
aliases) are counted each time they are reached, as their serialised form repeats them,
so a "billion laughs" document is refused after about ``max_bytes`` steps.

NaN and Infinity in values written at run time (context writes: initial context, step
outputs, resume data, signal payloads, ``ctx.set``; task outputs; checkpoints) are
refused with ``find_non_finite``. It is cheap in the common case: a non-finite float
always encodes to ``null``, so only a value whose JSON contains ``null`` is checked
further (by the standard library's C encoder, then a walk to name the path).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_DEFINITION_BYTES",
    "MAX_DEFINITION_DEPTH",
    "MAX_JSON_DEPTH",
    "JsonProblem",
    "find_non_finite",
    "json_problems",
    "non_finite_message",
    "printable",
]

INT_MIN = -(2**63)
"""The smallest integer the stores can write (signed 64 bits)."""
INT_MAX = 2**64 - 1
"""The largest integer the stores can write (unsigned 64 bits)."""

MAX_DEFINITION_BYTES = 1024 * 1024
"""Largest flow definition, as compact UTF-8 JSON, every key counted (1 MiB)."""
MAX_DEFINITION_DEPTH = 64
"""Deepest nesting of objects/lists in a flow definition (the definition itself is 1)."""
MAX_JSON_DEPTH = 128
"""Deepest nesting of a JSON argument (``--input``, ``--data``, ``--payload``); well under
orjson's 254, which the stores cannot go beyond."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class JsonProblem:
    """One place where a value is not storable JSON."""

    path: str
    """Dotted location (``steps.a.config.x``, ``items[2]``); ``""`` for the whole value."""
    message: str
    """What is wrong, in one sentence (printable: lone surrogates are escaped)."""
    fatal: bool = False
    """The value cannot even be walked safely (too deep, too large, not JSON types):
    other checks of it must not run. Bad scalars (huge integers, NaN, lone surrogates)
    are not fatal."""


def printable(text: str) -> str:
    """``text`` with lone surrogates escaped (``\\ud800``), so it can be printed and logged."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _join(path: str, key: str) -> str:
    key = printable(key)
    return f"{path}.{key}" if path else key


def _scalar_problem(value: Any) -> tuple[str | None, int]:
    """``(message or None, lower bound of its JSON size)`` for a non-container value."""
    if value is None or isinstance(value, bool):
        return None, 4
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return None, 1
        return "integer is beyond 64 bits, which the stores cannot hold", 1
    if isinstance(value, float):
        if math.isfinite(value):
            return None, 1
        return f"{value!r} is not valid JSON (use a finite number or null)", 1
    if isinstance(value, str):
        if _SURROGATE.search(value) is not None:
            return "string contains a lone surrogate (not valid UTF-8)", len(value) + 2
        return None, len(value) + 2
    return f"a value of type {type(value).__name__} is not JSON", 1


def json_problems(value: Any, *, max_depth: int, max_bytes: int | None = None) -> list[JsonProblem]:
    """Every place where ``value`` is not plain, storable JSON (at most 20 are listed).

    Plain JSON: ``dict`` (any ``Mapping``) with string keys, ``list``/``tuple``, ``str``
    without lone surrogates, ``int`` within 64 bits, finite ``float``, ``bool``, ``None``;
    nested at most ``max_depth`` levels (``{}`` and ``[]`` count 1); with ``max_bytes``,
    at most that many bytes as compact UTF-8 JSON. A size problem stops the walk.
    """
    problems = _Problems()
    size = 0
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack and not problems.done:
        item, path, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth + 1 > max_depth:
                # The full path of the 65th level says nothing more than its start.
                shown = path if len(path) <= 60 else path[:60] + "..."
                problems.append(
                    JsonProblem(shown, f"nested deeper than {max_depth} levels", fatal=True)
                )
                continue
            size += 1 + max(1, len(item))  # brackets and commas
            children: list[tuple[Any, str, int]] = []
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if not isinstance(key, str):
                        problems.append(
                            JsonProblem(
                                path, f"key {key!r} is not a string (quote it in YAML)", fatal=True
                            )
                        )
                        continue
                    if _SURROGATE.search(key) is not None:
                        problems.append(
                            JsonProblem(
                                _join(path, key), "key contains a lone surrogate (not valid UTF-8)"
                            )
                        )
                    size += len(key) + 3
                    children.append((child, _join(path, key), depth + 1))
            else:
                children = [(child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item)]
            stack.extend(reversed(children))  # reversed: problems come out in document order
        else:
            message, bound = _scalar_problem(item)
            size += bound
            if message is not None:
                fatal = message.startswith("a value of type")
                problems.append(JsonProblem(path, message, fatal=fatal))
        if max_bytes is not None and size > max_bytes:
            return [_too_large(max_bytes)]
    if max_bytes is not None and not problems.found:
        # The walk bounded the work; now the exact size (strings may take more bytes).
        encoded = json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), default=dict, allow_nan=False
        ).encode("utf-8")
        if len(encoded) > max_bytes:
            return [_too_large(max_bytes)]
    return problems.found


class _Problems:
    """The problems found so far: at most ``_MAX_PROBLEMS`` are kept, but the walk goes
    on until one is fatal, so a fatal problem is never hidden behind many small ones."""

    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found: list[JsonProblem] = []

    @property
    def done(self) -> bool:
        return len(self.found) >= _MAX_PROBLEMS and any(p.fatal for p in self.found)

    def append(self, problem: JsonProblem) -> None:
        if len(self.found) < _MAX_PROBLEMS:
            self.found.append(problem)
        elif problem.fatal:
            self.found[-1] = problem  # the last slot goes to the first fatal problem


def _too_large(max_bytes: int) -> JsonProblem:
    return JsonProblem("", f"larger than the maximum of {max_bytes} bytes as JSON", fatal=True)


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

"""Pipes: a step's taps into data tables (``pipes:`` in flow files).

A pipe names a table, a JMESPath ``map`` evaluated over ``{input, output, error,
context, execution}`` that builds the row, and ``when`` it fires: on the step's
``success``, its final ``failure`` (no retry follows), or ``always`` (either). The engine
writes the rows in the commit of the step's outcome (see docs/tables.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowmonkey.errors import ValidationIssue

__all__ = ["PIPE_WHEN", "Pipe", "parse_pipes"]

PIPE_WHEN = ("success", "failure", "always")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipe:
    """Write the row ``map`` builds into ``table`` when the step ends ``when``."""

    table: str
    map: str
    """A JMESPath expression over ``{input, output, error, context, execution}``."""
    when: str = "success"

    def fires_on(self, outcome: str) -> bool:
        """Whether a step outcome (``success`` or ``failure``) writes this pipe's row."""
        return self.when == outcome or self.when == "always"

    def to_dict(self) -> dict[str, Any]:
        """The file shape (``when`` omitted when it is the default)."""
        out: dict[str, Any] = {"table": self.table, "map": self.map}
        if self.when != "success":
            out["when"] = self.when
        return out


def parse_pipes(data: Any, path: str, issues: list[ValidationIssue]) -> tuple[Pipe, ...]:
    """Parse a step's ``pipes`` list leniently: a malformed entry is one issue and is
    left out (its values are checked by validation)."""
    if data is None:
        return ()
    if not isinstance(data, list | tuple):
        issues.append(ValidationIssue(path, "must be a list of {table, map, when?} objects"))
        return ()
    out = []
    for i, raw in enumerate(data):
        if not isinstance(raw, Mapping):
            issues.append(ValidationIssue(f"{path}[{i}]", "must be an object {table, map, when?}"))
            continue
        unknown = sorted(set(raw) - {"table", "map", "when"})
        if unknown:
            issues.append(
                ValidationIssue(f"{path}[{i}]", f"unknown pipe field(s): {', '.join(unknown)}")
            )
        out.append(
            Pipe(
                table=raw.get("table", ""), map=raw.get("map", ""), when=raw.get("when", "success")
            )
        )
    return tuple(out)

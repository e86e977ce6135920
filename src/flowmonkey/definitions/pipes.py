"""Validation of a step's ``pipes`` (see ``model/pipes.py``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flowmonkey.errors import ValidationIssue
from flowmonkey.model.flow import Step
from flowmonkey.model.pipes import PIPE_WHEN

__all__ = ["check_pipes"]


def check_pipes(step: Step, path: str, tables: Collection[str] | None) -> list[ValidationIssue]:
    """One issue per bad ``table``, ``map`` (JMESPath that does not compile) or ``when``;
    with ``tables`` given, a table not in it is an error too."""
    import jmespath  # lazily: only flows with pipes need it
    import jmespath.exceptions

    issues: list[ValidationIssue] = []
    for i, pipe in enumerate(step.pipes):
        here = f"{path}[{i}]"
        table: Any = pipe.table
        if not isinstance(table, str) or not table:
            issues.append(ValidationIssue(f"{here}.table", "Required: the name of a data table"))
        elif tables is not None and table not in tables:
            issues.append(ValidationIssue(f"{here}.table", f'Table "{table}" not found'))
        expression: Any = pipe.map
        if not isinstance(expression, str) or not expression.strip():
            issues.append(
                ValidationIssue(
                    f"{here}.map",
                    "Required: a JMESPath expression over {input, output, error, context, "
                    "execution} that builds the row",
                )
            )
        else:
            try:
                jmespath.compile(expression)
            except jmespath.exceptions.JMESPathError as exc:
                message = str(exc).replace("\n", " ")
                issues.append(
                    ValidationIssue(f"{here}.map", f"invalid JMESPath {expression!r}: {message}")
                )
        when: Any = pipe.when
        if when not in PIPE_WHEN:
            issues.append(
                ValidationIssue(
                    f"{here}.when", f"must be one of {', '.join(PIPE_WHEN)}, got {when!r}"
                )
            )
    return issues

"""Errors at the CLI edge: every user mistake becomes one ``error: ...`` line and exit 2.

The domain errors (``flowmonkey.errors``) know nothing about exit codes; the mapping from
their ``code`` to a message and an exit code lives here, in one table.
"""

from __future__ import annotations

import json
import re
import typing as t

import click

from flowmonkey.errors import FlowMonkeyError, FlowValidationError

__all__ = [
    "EXIT_COMPLETED",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_WAITING",
    "CliError",
    "to_cli_error",
]

EXIT_COMPLETED = 0
"""The execution completed (or a non-driving command succeeded)."""
EXIT_FAILED = 1
"""The execution failed or was cancelled; ``validate`` found errors."""
EXIT_USAGE = 2
"""A usage or input error: bad JSON, unknown id, invalid flow, rejected resume/signal."""
EXIT_WAITING = 3
"""The execution is waiting (or otherwise not finished yet)."""

_HINTS: dict[str, str] = {
    "EXECUTION_NOT_FOUND": "see `flowmonkey list` and check --store",
    "FLOW_NOT_FOUND": "run the flow file once with `flowmonkey run FLOW_FILE` "
    "or see `flowmonkey flows`",
    "EXECUTION_NOT_WAITING": "only a waiting execution can be resumed",
    "EXECUTION_NOT_FAILED": "only a failed execution can be retried",
}
"""Extra advice appended to the message of some error codes."""

_PROBLEM_LIST = re.compile(r" \((\d+ problem\(s\))\): .*$", re.DOTALL)
"""The ``(N problem(s)): a; b`` tail of a validation message (the issues get own lines)."""


class CliError(click.ClickException):
    """A user mistake: shown as ``error: message`` on stderr, never as a traceback.

    With ``--json`` a ``{"error": {...}}`` document is also written to stdout so scripts
    always get one JSON document.

    :param message: one line saying what is wrong.
    :param code: a machine-readable code (a ``FlowMonkeyError`` code when mapped).
    :param details: extra lines printed under the message (e.g. validation issues).
    :param data: structured details for the ``--json`` error document.
    """

    exit_code: t.ClassVar[int] = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        code: str = "USAGE_ERROR",
        details: t.Sequence[str] = (),
        data: t.Any = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details = list(details)
        self.data = data
        self.json_output = False
        """Set by the group when ``--json`` is on."""

    def show(self, file: t.IO[t.Any] | None = None) -> None:
        """Print ``error: ...`` (and any detail lines) to stderr; JSON to stdout too."""
        if self.json_output:
            doc: dict[str, t.Any] = {"code": self.code, "message": self.message}
            if self.data is not None:
                doc["details"] = self.data
            click.echo(json.dumps({"error": doc}, indent=2, default=str))
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)
        for line in self.details:
            click.echo(f"  {line}", file=file, err=file is None)


def to_cli_error(exc: FlowMonkeyError) -> CliError:
    """Turn a domain error into the ``CliError`` shown to the user (the one mapping)."""
    message = exc.message
    hint = _HINTS.get(exc.code)
    if hint:
        message = f"{message}; {hint}"
    details: list[str] = []
    if isinstance(exc, FlowValidationError):
        issues = exc.issues
        errors = [i for i in issues if i.severity == "error"]
        # One error is already spelled out in the message (so is a parse error); with
        # several, the message keeps the count and every issue gets its own line.
        if len(errors) > 1:
            message = _PROBLEM_LIST.sub(r" (\1)", message)
        if len(issues) > 1:
            details = [f"{i.severity}: {i.path or '<flow>'}: {i.message}" for i in issues]
    return CliError(
        message,
        code=exc.code,
        details=details,
        data=exc.details,
    )

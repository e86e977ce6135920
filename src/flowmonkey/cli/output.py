"""How commands print: rich on a terminal, plain lines otherwise, one JSON document with
``--json``.

An ``Output`` is created per command (so click's test runner can swap the streams).
"""

from __future__ import annotations

import json
import sys
import typing as t
from collections.abc import Sequence
from datetime import datetime

import click
from rich.console import Console
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from flowmonkey.model.execution import Execution, ExecutionStatus

__all__ = ["STATUS_STYLES", "Output", "format_duration", "format_time", "to_json"]

STATUS_STYLES: dict[str, str] = {
    "completed": "bold green",
    "failed": "bold red",
    "cancelled": "bold magenta",
    "cancelling": "magenta",
    "waiting": "bold yellow",
    "running": "cyan",
    "pending": "dim",
}
"""Rich style of each execution status."""


def to_json(value: t.Any, *, indent: int | None = 2) -> str:
    """JSON text of ``value`` (datetimes and other objects as strings)."""
    return json.dumps(value, indent=indent, ensure_ascii=False, default=_default)


def _default(value: t.Any) -> t.Any:
    if isinstance(value, datetime):
        return value.isoformat()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(value)


def format_time(value: datetime | None) -> str:
    """A compact local-independent timestamp (``2025-01-31 12:00:05Z``) or ``-``."""
    if value is None:
        return "-"
    return value.isoformat(sep=" ", timespec="seconds").replace("+00:00", "Z")


def format_duration(ms: float | None) -> str:
    """``12.3 ms`` below a second, ``4.56 s`` below a minute, else ``2m 5s``."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.1f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest}s"


class Output:
    """Printing for one command.

    :param json_mode: ``--json``: data goes out as one JSON document (``document``);
        progress and notes go to stderr as plain lines.
    :param fancy: use rich colours and tables; defaults to "stdout is a terminal".
    """

    def __init__(self, *, json_mode: bool, fancy: bool | None = None) -> None:
        self.json_mode = json_mode
        if fancy is None:
            fancy = not json_mode and sys.stdout.isatty()
        self.fancy = fancy and not json_mode
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The rich console (created on first use, on the current stdout)."""
        if self._console is None:
            self._console = Console(highlight=False, soft_wrap=True)
        return self._console

    # -- primitives ------------------------------------------------------------------------

    def line(self, text: str, style: str | None = None) -> None:
        """One line of human output (stderr in JSON mode, so stdout stays one document)."""
        if self.fancy:
            self.console.print(Text(text, style=style or ""))
        else:
            click.echo(text, err=self.json_mode)

    def styled(self, parts: Sequence[tuple[str, str | None]]) -> None:
        """One line made of differently styled parts."""
        if self.fancy:
            text = Text()
            for part, style in parts:
                text.append(part, style=style or "")
            self.console.print(text)
        else:
            click.echo("".join(part for part, _ in parts), err=self.json_mode)

    def document(self, doc: t.Any) -> None:
        """The command's JSON document (``--json``) on stdout."""
        click.echo(to_json(doc))

    def json_block(self, value: t.Any) -> None:
        """Pretty JSON inside human output (coloured on a terminal)."""
        if self.fancy:
            self.console.print(JSON(to_json(value, indent=None)))
        else:
            click.echo(to_json(value), err=self.json_mode)

    def text(self, text: str) -> None:
        """Raw text, printed as is (no markup, no wrapping)."""
        click.echo(text, nl=not text.endswith("\n"))

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        title: str | None = None,
        styles: Sequence[str | None] | None = None,
        style_column: int = 0,
        no_wrap: Sequence[int] = (0,),
    ) -> None:
        """A table: rich on a terminal, space-aligned columns otherwise.

        ``styles`` (one per row) colours the cell in ``style_column``; the columns in
        ``no_wrap`` (ids) are never folded on a narrow terminal.
        """
        if self.fancy:
            table = Table(title=title, header_style="bold", show_edge=False, pad_edge=False)
            for i, header in enumerate(headers):
                table.add_column(header, overflow="fold", no_wrap=i in no_wrap)
            for r, row in enumerate(rows):
                cells: list[str | Text] = list(row)
                if styles and styles[r]:
                    cells[style_column] = Text(row[style_column], style=styles[r] or "")
                table.add_row(*cells)
            self.console.print(table)
            return
        if title:
            click.echo(title, err=self.json_mode)
        widths = [len(h) for h in headers]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        for row in [list(headers), *rows]:
            padded = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
            click.echo("  ".join(padded).rstrip(), err=self.json_mode)

    def status(self, status: ExecutionStatus | str) -> tuple[str, str | None]:
        """A styled status part for ``styled``."""
        return str(status), STATUS_STYLES.get(str(status))

    # -- executions -----------------------------------------------------------------------

    def execution(self, execution: Execution, *, show_context: bool = True) -> None:
        """Human summary of one execution: status, position, error, context."""
        ex = execution
        label = [("status:    ", "bold"), self.status(ex.status)]
        if ex.wait_reason and ex.status is ExecutionStatus.WAITING:
            label.append((f" ({ex.wait_reason})", None))
        self.styled(label)
        self.styled([("execution: ", "bold"), (ex.id, None)])
        self.styled([("flow:      ", "bold"), (f"{ex.flow_id}@{ex.flow_version}", None)])
        if ex.current_step_id and not ex.status.is_terminal:
            self.styled([("step:      ", "bold"), (ex.current_step_id, None)])
        if ex.wake_at is not None and not ex.status.is_terminal:
            self.styled([("wakes at:  ", "bold"), (format_time(ex.wake_at), None)])
        self.styled([("steps run: ", "bold"), (str(ex.step_count), None)])
        took = _took_ms(ex)
        if took is not None:
            self.styled([("duration:  ", "bold"), (format_duration(took), None)])
        if ex.tenant_id:
            self.styled([("tenant:    ", "bold"), (ex.tenant_id, None)])
        if ex.error is not None:
            where = f" at {ex.error.step_id}" if ex.error.step_id else ""
            self.styled(
                [
                    ("error:     ", "bold"),
                    (f"{ex.error.code}{where}: ", "red"),
                    (ex.error.message, None),
                ]
            )
        if ex.cancellation is not None:
            reason = f": {ex.cancellation.reason}" if ex.cancellation.reason else ""
            self.styled([("cancelled: ", "bold"), (f"by {ex.cancellation.source}{reason}", None)])
        if show_context:
            self.line("context:", "bold")
            self.json_block(ex.context)


def _took_ms(ex: Execution) -> float | None:
    start = ex.started_at or ex.created_at
    end = ex.finished_at
    if end is None:
        return None
    return (end - start).total_seconds() * 1000

"""``flowmonkey tables create|list|rows|export``: data tables from the command line."""

from __future__ import annotations

import sys
import typing as t

import click

from flowmonkey.cli.options import common_options
from flowmonkey.cli.output import Output, format_time, to_json
from flowmonkey.cli.state import get_state, open_engine, parse_json_object, run_async

__all__ = ["tables"]

_WHERE_HELP = (
    "Filter FIELD:VALUE, or FIELD:OP:VALUE with OP one of eq, ne, gt, gte, lt, lte "
    "(comparisons need an indexed field). Repeatable; all must match."
)
_ORDER_HELP = "FIELD or -FIELD (an indexed field), or created_at / -created_at (default)."


@click.group()
def tables() -> None:
    """Data tables: rows written by the pipes of flow steps (docs/tables.md)."""


@tables.command("create")
@click.argument("name")
@click.option(
    "--schema",
    "schema_arg",
    required=True,
    metavar="JSON",
    help="JSON Schema of a row (JSON text, or @file.json).",
)
@click.option(
    "--index", "indexed", multiple=True, metavar="FIELD", help="Index FIELD (repeatable)."
)
@common_options
def create(name: str, schema_arg: str, indexed: tuple[str, ...]) -> None:
    """Create table NAME (its definition never changes afterwards)."""
    state = get_state()
    out = Output(json_mode=state.json_output)
    schema = parse_json_object(schema_arg, "--schema")

    async def go() -> t.Any:
        async with open_engine(state) as engine:
            return await engine.tables.create(name, schema, indexed)

    table, created = run_async(go())
    if out.json_mode:
        out.document({**table.to_dict(), "created": created})
        return
    verb = "created" if created else "already exists (same definition)"
    out.line(f'table "{table.name}" {verb}', "green" if created else "dim")


@tables.command("list")
@common_options
def list_tables() -> None:
    """List the tables with their indexed fields."""
    state = get_state()
    out = Output(json_mode=state.json_output)

    async def go() -> t.Any:
        async with open_engine(state) as engine:
            return await engine.tables.list()

    found = run_async(go())
    if out.json_mode:
        out.document({"items": [table.to_dict() for table in found]})
        return
    rows = [
        [table.name, ", ".join(table.schema.get("properties") or {}), ", ".join(table.indexed),
         format_time(table.created_at)]
        for table in found
    ]  # fmt: skip
    out.table(["table", "fields", "indexed", "created"], rows)
    if not rows:
        out.line("(no tables: `flowmonkey tables create NAME --schema JSON`)", "dim")


@tables.command("rows")
@click.argument("name")
@click.option("--where", multiple=True, metavar="F:V", help=_WHERE_HELP)
@click.option("--order", metavar="FIELD", help=_ORDER_HELP)
@click.option("--tenant", metavar="T", help="Only the rows of tenant T.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Page size."
)
@click.option("--cursor", metavar="C", help="The next cursor printed by the previous page.")
@common_options
def rows(
    name: str,
    where: tuple[str, ...],
    order: str | None,
    tenant: str | None,
    limit: int,
    cursor: str | None,
) -> None:
    """Show one page of the rows of table NAME (newest first by default)."""
    state = get_state()
    out = Output(json_mode=state.json_output)

    async def go() -> t.Any:
        async with open_engine(state) as engine:
            return await engine.tables.rows(
                name, where=where, order=order, tenant_id=tenant, limit=limit, cursor=cursor
            )

    page = run_async(go())
    if out.json_mode:
        out.document(
            {"items": [row.to_dict() for row in page.items], "next_cursor": page.next_cursor}
        )
        return
    table_rows = [
        [row.id, row.tenant_id or "-", row.execution_id or "-", row.step_id or "-",
         format_time(row.created_at), to_json(row.data, indent=None)]
        for row in page.items
    ]  # fmt: skip
    out.table(["id", "tenant", "execution", "step", "created", "data"], table_rows)
    if not table_rows:
        out.line("(no rows)", "dim")
    if page.next_cursor:
        out.line(f"next cursor: {page.next_cursor}", "dim")


@tables.command("export")
@click.argument("name")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines (one row per line) or CSV (one column per schema property).",
)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file (default: stdout).",
)
@click.option("--where", multiple=True, metavar="F:V", help=_WHERE_HELP)
@click.option("--order", metavar="FIELD", default="created_at", help=_ORDER_HELP)
@click.option("--tenant", metavar="T", help="Only the rows of tenant T.")
@common_options
def export(
    name: str,
    fmt: t.Literal["jsonl", "csv"],
    output: str | None,
    where: tuple[str, ...],
    order: str,
    tenant: str | None,
) -> None:
    """Stream every row of table NAME (oldest first) as JSON Lines or CSV."""
    state = get_state()

    async def go(target: t.BinaryIO) -> int:
        async with open_engine(state) as engine:
            chunks = await engine.tables.export(
                name, fmt, where=where, order=order, tenant_id=tenant
            )
            written = 0
            async for chunk in chunks:
                target.write(chunk)
                written += len(chunk)
            return written

    if output is None:
        run_async(go(sys.stdout.buffer))
        sys.stdout.buffer.flush()
        return
    with open(output, "wb") as target:
        written = run_async(go(target))
    click.echo(f"wrote {written} bytes to {output}", err=True)

"""``flowmonkey purge``: delete old finished executions (retention, by hand or cron)."""

from __future__ import annotations

import click

from flowmonkey.cli.errors import CliError
from flowmonkey.cli.options import common_options
from flowmonkey.cli.output import Output
from flowmonkey.cli.state import get_state, open_engine, run_async
from flowmonkey.durations import parse_duration
from flowmonkey.engine.retention import PurgeReport
from flowmonkey.model.execution import ExecutionStatus

__all__ = ["purge"]

_FINAL = [str(s) for s in ExecutionStatus if s.is_terminal]


@click.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    help="Purge executions that finished longer ago than this (30d, 12h, PT36H...).",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(_FINAL),
    help="Only these final statuses (repeatable; default: all three).",
)
@click.option("--flow", "flow_id", metavar="F", help="Only executions of flow F.")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; delete nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=200,
    show_default=True,
    help="Executions examined per transaction (workers wait at most one batch).",
)
@common_options
def purge(
    older_than: str,
    statuses: tuple[str, ...],
    flow_id: str | None,
    dry_run: bool,
    batch_size: int,
) -> None:
    """Delete finished executions older than --older-than, with their context, history,
    events, resume tokens, tasks and idempotency keys, in small batches.

    Kept whatever their age: executions still running or waiting, children of a kept
    parent (a finished tree goes as a whole), and executions whose idempotency key is
    still valid. Safe to run while workers run.
    """
    state = get_state()
    out = Output(json_mode=state.json_output)
    try:
        age = parse_duration(older_than, field="--older-than")
    except ValueError as exc:
        raise CliError(str(exc), code="BAD_DURATION") from exc
    if age.total_seconds() <= 0:
        raise CliError("--older-than must be positive", code="BAD_DURATION")

    async def go() -> PurgeReport:
        async with open_engine(state) as engine:
            return await engine.purge(
                older_than=age, status=list(statuses) or None, flow_id=flow_id,
                dry_run=dry_run, batch_size=batch_size,
            )  # fmt: skip

    report = run_async(go())
    if out.json_mode:
        out.document({"executions": report.executions, "rows": report.rows,
                      "batches": report.batches, "dry_run": report.dry_run})  # fmt: skip
    elif dry_run:
        out.line(f"would purge {report.executions} execution(s) (dry run: nothing deleted)")
    else:
        out.line(
            f"purged {report.executions} execution(s), {report.rows} row(s), "
            f"in {report.batches} batch(es)"
        )

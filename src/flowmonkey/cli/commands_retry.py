"""``flowmonkey retry ID``: continue a failed execution from the step that failed."""

from __future__ import annotations

import click

from flowmonkey.cli.commands_bulk import filter_option, run_bulk
from flowmonkey.cli.commands_exec import _prepare, _start, finish, settle
from flowmonkey.cli.errors import CliError
from flowmonkey.cli.options import common_options, handlers_option, max_wait_option
from flowmonkey.cli.progress import ProgressPrinter
from flowmonkey.cli.state import get_state, open_engine, run_async
from flowmonkey.engine.results import RunResult

__all__ = ["retry"]


@click.command()
@click.argument("execution_id", metavar="ID", required=False)
@handlers_option
@max_wait_option
@filter_option
@common_options
def retry(
    execution_id: str | None,
    handler_specs: tuple[str, ...],
    max_wait: float,
    filters: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Retry the failed execution ID: the step that failed runs again with fresh
    attempts, the context is kept, and it keeps running (like `resume`).

    Refused (exit 2) unless it is failed. Pass the same --handlers as for `run`.
    Exit 0 completed, 1 failed again or cancelled, 3 waiting.

    With --filter K=V instead of ID (e.g. --filter status=failed --filter flow_id=F):
    retry every matching failed execution, leaving them pending for a worker (at most
    10,000; --dry-run first); exit 1 when some could not be retried.
    """
    state = get_state()
    if (execution_id is None) == (not filters):
        raise CliError("give an execution ID or --filter KEY=VALUE (not both)", code="USAGE")
    if execution_id is None:
        run_bulk(state, "retry", filters, dry_run=dry_run)
    out, handlers = _start(state, handler_specs)

    async def go() -> RunResult:
        async with open_engine(state, handlers, recover=True) as engine:
            await _prepare(engine, execution_id, handlers)
            engine.on("*", ProgressPrinter(out))
            result = await engine.retry(execution_id)
            return await settle(engine, result, max_wait)

    finish(out, state, run_async(go()))

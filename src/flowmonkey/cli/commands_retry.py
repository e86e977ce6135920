"""``flowmonkey retry ID``: continue a failed execution from the step that failed."""

from __future__ import annotations

import click

from flowmonkey.cli.commands_exec import _prepare, _start, finish, settle
from flowmonkey.cli.options import common_options, handlers_option, max_wait_option
from flowmonkey.cli.progress import ProgressPrinter
from flowmonkey.cli.state import get_state, open_engine, run_async
from flowmonkey.engine.results import RunResult

__all__ = ["retry"]


@click.command()
@click.argument("execution_id", metavar="ID")
@handlers_option
@max_wait_option
@common_options
def retry(execution_id: str, handler_specs: tuple[str, ...], max_wait: float) -> None:
    """Retry the failed execution ID: the step that failed runs again with fresh
    attempts, the context is kept, and it keeps running (like `resume`).

    Refused (exit 2) unless it is failed. Pass the same --handlers as for `run`.
    Exit 0 completed, 1 failed again or cancelled, 3 waiting.
    """
    state = get_state()
    out, handlers = _start(state, handler_specs)

    async def go() -> RunResult:
        async with open_engine(state, handlers, recover=True) as engine:
            await _prepare(engine, execution_id, handlers)
            engine.on("*", ProgressPrinter(out))
            result = await engine.retry(execution_id)
            return await settle(engine, result, max_wait)

    finish(out, state, run_async(go()))

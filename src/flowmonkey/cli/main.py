"""The ``flowmonkey`` command group and its entry point ``main()``.

Domain errors raised by any command are turned into ``CliError`` here, in one place
(``FlowMonkeyGroup.invoke``), so a user mistake is one ``error: ...`` line and exit 2.
"""

from __future__ import annotations

import typing as t

import click

from flowmonkey import __version__
from flowmonkey.cli.commands_exec import cancel, resume, run, signal, tick
from flowmonkey.cli.commands_flow import graph, validate
from flowmonkey.cli.commands_query import events, flows, history, list_executions, status
from flowmonkey.cli.commands_retention import purge
from flowmonkey.cli.commands_retry import retry
from flowmonkey.cli.commands_schedules import schedules
from flowmonkey.cli.commands_tables import tables
from flowmonkey.cli.errors import CliError, to_cli_error
from flowmonkey.cli.keys import keys
from flowmonkey.cli.serve import serve_command
from flowmonkey.cli.state import DEFAULT_STORE, CliState
from flowmonkey.cli.worker import migrate_command, worker_command
from flowmonkey.errors import FlowMonkeyError

__all__ = ["FlowMonkeyGroup", "cli", "main"]


class FlowMonkeyGroup(click.Group):
    """A group that maps ``FlowMonkeyError`` to ``CliError`` and honours ``--json``."""

    def invoke(self, ctx: click.Context) -> t.Any:
        """Run the command; convert domain errors (no tracebacks for user mistakes)."""
        try:
            return super().invoke(ctx)
        except FlowMonkeyError as exc:
            error = to_cli_error(exc)
            error.json_output = _json_mode(ctx)
            raise error from exc
        except CliError as exc:
            exc.json_output = _json_mode(ctx)
            raise


def _json_mode(ctx: click.Context) -> bool:
    state = ctx.find_object(CliState)
    return state is not None and state.json_output


@click.group(cls=FlowMonkeyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    envvar="FLOWMONKEY_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    show_envvar=True,
    metavar="URL",
    help="Where executions live: sqlite:///path.db, postgresql://... or memory://.",
)
@click.option(
    "--server",
    envvar="FLOWMONKEY_SERVER",
    show_envvar=True,
    metavar="URL",
    help="A flowmonkey server (`flowmonkey serve`) instead of a store: status, list, "
    "history, events, resume, signal, cancel, retry and flows go through its API.",
)
@click.option(
    "--api-key",
    envvar="FLOWMONKEY_API_KEY",
    show_envvar=True,
    metavar="KEY",
    help="API key for --server.",
)
@click.option("--json", "json_output", is_flag=True, help="Machine output: one JSON document.")
@click.version_option(__version__, "--version", prog_name="flowmonkey")
@click.pass_context
def cli(
    ctx: click.Context,
    store: str,
    server: str | None,
    api_key: str | None,
    json_output: bool,
) -> None:
    """flowmonkey: run durable workflows from the command line."""
    ctx.obj = CliState(
        store_url=store, json_output=json_output, server_url=server or None, api_key=api_key
    )


cli.add_command(run)
cli.add_command(resume)
cli.add_command(signal)
cli.add_command(tick)
cli.add_command(cancel)
cli.add_command(retry)
cli.add_command(status)
cli.add_command(history)
cli.add_command(list_executions)
cli.add_command(events)
cli.add_command(flows)
cli.add_command(validate)
cli.add_command(graph)
cli.add_command(worker_command)
cli.add_command(migrate_command)
cli.add_command(serve_command)
cli.add_command(keys)
cli.add_command(schedules)
cli.add_command(tables)
cli.add_command(purge)


def main() -> None:
    """Console-script entry point (``flowmonkey``)."""
    cli(prog_name="flowmonkey")

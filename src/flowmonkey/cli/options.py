"""Options shared by several commands."""

from __future__ import annotations

import typing as t

import click

from flowmonkey.cli.state import get_state

__all__ = ["common_options", "handlers_option", "json_option", "max_wait_option", "store_option"]

F = t.TypeVar("F", bound=t.Callable[..., t.Any])


def handlers_option(fn: F) -> F:
    """``--handlers MODULE`` (repeatable): a dotted module or a ``.py`` file."""
    return click.option(
        "--handlers",
        "handler_specs",
        multiple=True,
        metavar="MODULE",
        help="Handlers to register: a dotted module name or a .py file (repeatable).",
    )(fn)


def max_wait_option(fn: F) -> F:
    """``--max-wait SECONDS``: keep driving through short timer waits and retry backoffs."""
    return click.option(
        "--max-wait",
        type=click.FloatRange(min=0),
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        help="Sleep through timer waits and retry backoffs due within this many seconds "
        "instead of stopping (0: stop at the first wait).",
    )(fn)


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        get_state().json_output = True


def json_option(fn: F) -> F:
    """``--json`` after the command name (same as the group's ``--json``)."""
    return click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Machine output: one JSON document.",
    )(fn)


def _set_store(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        get_state().store_url = value


def store_option(fn: F) -> F:
    """``--store URL`` after the command name (overrides the group's ``--store``)."""
    return click.option(
        "--store",
        "store_flag",
        metavar="URL",
        expose_value=False,
        callback=_set_store,
        help="Store URL (same as the group's --store).",
    )(fn)


def common_options(fn: F) -> F:
    """``--store`` and ``--json``, accepted after the command name too."""
    return store_option(json_option(fn))

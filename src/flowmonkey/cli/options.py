"""Options shared by several commands."""

from __future__ import annotations

import typing as t

import click

from flowmonkey.cli.state import get_state

__all__ = [
    "base_url_option",
    "common_options",
    "engine_options",
    "handlers_option",
    "http_allow_option",
    "json_option",
    "max_wait_option",
    "split_http_allow",
    "store_option",
]

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


def split_http_allow(values: t.Iterable[str]) -> tuple[str, ...]:
    """``("a,b", "c")`` -> ``("a", "b", "c")``: repeated options and comma lists."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _set_http_allow(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    allow = split_http_allow(value)
    if allow:
        get_state().http_allow = allow
    return allow


def http_allow_option(fn: F) -> F:
    """``--http-allow HOST|CIDR`` (repeatable; env ``FLOWMONKEY_HTTP_ALLOW``, comma-separated):
    internal hosts or networks the ``http``/``webhook`` steps may reach. Fills
    ``EngineOptions.http_allow``; the value is also passed to the command as
    ``http_allow`` (a tuple)."""
    return click.option(
        "--http-allow",
        "http_allow",
        multiple=True,
        metavar="HOST|CIDR",
        envvar="FLOWMONKEY_HTTP_ALLOW",
        callback=_set_http_allow,
        help="Host or network the http/webhook steps may reach although it is internal "
        "(repeatable; env FLOWMONKEY_HTTP_ALLOW, comma-separated).",
    )(fn)


def _set_base_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value:
        get_state().base_url = value
    return value


def base_url_option(fn: F) -> F:
    """``--base-url URL`` (env ``FLOWMONKEY_BASE_URL``): the API's public URL, used in the
    ``callback_url`` of ``webhook`` steps (``EngineOptions.base_url``)."""
    return click.option(
        "--base-url",
        "base_url",
        metavar="URL",
        envvar="FLOWMONKEY_BASE_URL",
        callback=_set_base_url,
        help="Public URL of the HTTP API, for webhook callback URLs [env FLOWMONKEY_BASE_URL].",
    )(fn)


def engine_options(fn: F) -> F:
    """``--http-allow`` and ``--base-url`` for commands that open an engine (kept in the
    CLI state, read by ``open_engine``; not passed to the command)."""
    fn = click.option(
        "--http-allow",
        "http_allow",
        multiple=True,
        metavar="HOST|CIDR",
        envvar="FLOWMONKEY_HTTP_ALLOW",
        expose_value=False,
        callback=_set_http_allow,
        help="Host or network the http/webhook steps may reach although it is internal "
        "(repeatable; env FLOWMONKEY_HTTP_ALLOW, comma-separated).",
    )(fn)
    return click.option(
        "--base-url",
        "base_url",
        metavar="URL",
        envvar="FLOWMONKEY_BASE_URL",
        expose_value=False,
        callback=_set_base_url,
        help="Public URL of the HTTP API, for webhook callback URLs [env FLOWMONKEY_BASE_URL].",
    )(fn)


def process_store_option(fn: F) -> F:
    """``--store URL`` [env ``FLOWMONKEY_STORE``] of a long-running process (``serve``,
    ``worker``), passed to the command as ``store_url``."""
    return click.option(
        "--store",
        "store_url",
        envvar="FLOWMONKEY_STORE",
        metavar="URL",
        help="Store URL: sqlite:///path.db or postgresql://user@host/db "
        "[env FLOWMONKEY_STORE; default sqlite:///flowmonkey.db].",
    )(fn)


def process_handlers_option(fn: F) -> F:
    """``--handlers MODULE`` (repeatable) of a long-running process, as ``handler_modules``."""
    return click.option(
        "--handlers",
        "handler_modules",
        multiple=True,
        metavar="MODULE",
        help="Module (dotted name or .py file) whose handlers to register; repeatable.",
    )(fn)


def process_flows_option(help: str) -> t.Callable[[F], F]:
    """``--flows PATH`` (repeatable, must exist) of a long-running process, as
    ``flow_paths``; ``help`` says what the process does with them."""

    def decorate(fn: F) -> F:
        return click.option(
            "--flows",
            "flow_paths",
            multiple=True,
            metavar="PATH",
            type=click.Path(exists=True),
            help=help,
        )(fn)

    return decorate

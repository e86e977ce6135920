"""What every command shares: the global options, argument parsing, handlers and engine.

Nothing here prints; commands print through ``flowmonkey.cli.output``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import typing as t
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click

from flowmonkey.cli.errors import CliError
from flowmonkey.definitions.builtins import BUILTIN_STEP_TYPES
from flowmonkey.definitions.loader import check_flow, load_flow, parse_flow
from flowmonkey.definitions.registry import FlowRegistry
from flowmonkey.engine.engine import Engine
from flowmonkey.engine.options import EngineOptions
from flowmonkey.errors import FlowMonkeyError, FlowValidationError, ValidationIssue
from flowmonkey.handlers.registry import HandlerRegistry
from flowmonkey.jsonvalues import MAX_JSON_DEPTH, json_problems
from flowmonkey.model.flow import Flow
from flowmonkey.stores import open_store, redact_url

__all__ = [
    "DEFAULT_STORE",
    "CliState",
    "check_flow_file",
    "check_handlers",
    "get_state",
    "load_handlers",
    "missing_handler_types",
    "open_engine",
    "parse_json_arg",
    "parse_json_object",
    "read_flow",
    "run_async",
]

DEFAULT_STORE = "sqlite:///flowmonkey.db"
"""Store used when neither ``--store`` nor ``FLOWMONKEY_STORE`` is given."""

T = t.TypeVar("T")


@dataclass(slots=True)
class CliState:
    """The group's options, kept on the click context (``ctx.obj``)."""

    store_url: str = DEFAULT_STORE
    json_output: bool = False
    server_url: str | None = None
    """``--server``: talk to a flowmonkey server instead of a store."""
    api_key: str | None = None
    handler_specs: list[str] = field(default_factory=list)
    """The ``--handlers`` values of the running command (to print a resume command)."""
    http_allow: tuple[str, ...] = ()
    """``--http-allow`` / ``FLOWMONKEY_HTTP_ALLOW`` (``EngineOptions.http_allow``)."""
    base_url: str | None = None
    """``--base-url`` / ``FLOWMONKEY_BASE_URL`` (``EngineOptions.base_url``)."""


def get_state() -> CliState:
    """The ``CliState`` of the current click invocation (a default one if none is set)."""
    ctx = click.get_current_context()
    state = ctx.find_object(CliState)
    if state is None:
        state = ctx.ensure_object(CliState)
    return state


def run_async(coro: Coroutine[t.Any, t.Any, T]) -> T:
    """Run one command's engine calls in a fresh event loop."""
    return asyncio.run(coro)


# -- arguments ----------------------------------------------------------------------------


def parse_json_arg(value: str | None, option: str) -> t.Any:
    """Parse a JSON option value, or ``@path`` to read it from a file (``@-``: stdin).

    The value must be storable JSON (see ``flowmonkey.jsonvalues``): integers within 64
    bits, no lone surrogates, at most ``MAX_JSON_DEPTH`` levels deep.

    Raises:
        CliError: unreadable file, invalid JSON (with line and column), or JSON the
            stores could not hold (with the path of each problem). Never a traceback.
    """
    if value is None:
        return None
    source = f"{option}"
    text = value
    if value.startswith("@"):
        path = value[1:]
        source = f"{option} {value}"
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CliError(f"{source}: no such file", code="BAD_JSON")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{source}: cannot read file: {exc}", code="BAD_JSON")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_int=_bounded_int)
    except RecursionError:
        raise CliError(
            f"{source}: invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels", code="BAD_JSON"
        ) from None
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):
            raise CliError(f"{source}: invalid JSON: {exc}", code="BAD_JSON") from None
        raise CliError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            code="BAD_JSON",
        ) from None
    problems = json_problems(value, max_depth=MAX_JSON_DEPTH)
    if problems:
        where = [f"{p.path or '<value>'}: {p.message}" for p in problems]
        raise CliError(
            f"{source}: JSON the stores cannot hold: {where[0]}",
            code="BAD_JSON",
            details=where[1:],
            data=[{"path": p.path, "message": p.message} for p in problems],
        )
    return value


def _reject_constant(name: str) -> t.Any:
    raise ValueError(f"{name} is not valid JSON")


def _bounded_int(text: str) -> int:
    # Python's own guard (4300 digits) would suggest raising a limit; 20 digits is
    # already past 64 bits, and json_problems names the path of a shorter large one.
    if len(text.lstrip("-")) > 20:
        raise ValueError(f"integer {text[:20]}... is beyond 64 bits")
    return int(text)


def parse_json_object(value: str | None, option: str) -> dict[str, t.Any]:
    """Like ``parse_json_arg`` but the value must be a JSON object (``{}`` when absent)."""
    data = parse_json_arg(value, option)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CliError(
            f'{option}: expected a JSON object like {{"key": "value"}}, got {type(data).__name__}',
            code="BAD_JSON",
        )
    return data


def load_handlers(specs: Sequence[str]) -> HandlerRegistry:
    """A registry with the handlers of every ``--handlers`` module or ``.py`` file.

    A file's directory (and, for a dotted name, the working directory) is put on
    ``sys.path`` first so the module can import its siblings.

    Raises:
        FlowMonkeyError: ``HANDLERS_NOT_LOADED`` (mapped by the group).
        CliError: a handler type is defined twice.
    """
    registry = HandlerRegistry()
    for spec in specs:
        is_file = spec.endswith(".py") or "/" in spec or os.sep in spec
        folder = str(Path(spec).expanduser().resolve().parent) if is_file else os.getcwd()
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            registry.register_module(spec)
        except ValueError as exc:
            raise CliError(f"--handlers {spec}: {exc}", code="HANDLERS_NOT_LOADED")
    return registry


def read_flow(path: str, handlers: HandlerRegistry | None = None, *, validate: bool = True) -> Flow:
    """Load a flow file; with ``validate`` (and ``handlers``) check it fully.

    Raises:
        CliError: the file does not exist.
        FlowValidationError: unparseable or invalid (mapped by the group).
    """
    file = _flow_file(path)
    if not validate:
        return parse_flow(file)
    types = handlers.types() if handlers is not None else None
    return load_flow(file, handler_types=types)


def check_flow_file(
    path: str, handler_types: Sequence[str] | None = None
) -> tuple[Flow, list[ValidationIssue]]:
    """Every issue of a flow file (unparseable fields and validation problems at once).

    Raises:
        CliError: the file does not exist.
        FlowValidationError: the file cannot be read or parsed as JSON/YAML at all.
    """
    return check_flow(_flow_file(path), handler_types=handler_types)


def _flow_file(path: str) -> Path:
    file = Path(path)
    if not file.exists():
        raise CliError(f"flow file {path!r} not found", code="FLOW_FILE_NOT_FOUND")
    if file.is_dir():
        raise CliError(f"flow file {path!r} is a directory", code="FLOW_FILE_NOT_FOUND")
    return file


def missing_handler_types(flow: Flow, handlers: HandlerRegistry) -> list[str]:
    """Step types of ``flow`` that are neither built in nor registered in ``handlers``."""
    used = {step.type for step in flow.steps.values()}
    return sorted(used - BUILTIN_STEP_TYPES - set(handlers.types()))


def check_handlers(flow: Flow, handlers: HandlerRegistry) -> None:
    """Refuse to drive ``flow`` when a step type has no handler or a step's config does
    not fit its handler (either would fail the run).

    Raises:
        CliError: naming the missing types.
        FlowValidationError: step configs that do not fit their handler.
    """
    missing = missing_handler_types(flow, handlers)
    if missing:
        names = ", ".join(f'"{m}"' for m in missing)
        raise CliError(
            f'flow "{flow.key}" needs handlers for {names}: pass --handlers MODULE',
            code="HANDLER_NOT_FOUND",
        )
    issues = handlers.check_flow_configs(flow)
    if issues:
        raise FlowValidationError(flow.id, issues)


# -- engine ------------------------------------------------------------------------------


@asynccontextmanager
async def open_engine(
    state: CliState, handlers: HandlerRegistry | None = None, *, recover: bool = False
) -> AsyncIterator[Engine]:
    """An initialised engine over ``state.store_url``; closed on exit.

    ``recover`` recovers stale runs on start (only commands that drive executions).

    Raises:
        CliError: the store URL is not understood.
    """
    if state.server_url is not None:
        from flowmonkey.cli.remote import RemoteEngine
        from flowmonkey.client import Client

        remote = RemoteEngine(Client(state.server_url, state.api_key))
        try:
            # The commands that honour --server use only what RemoteEngine offers.
            yield t.cast(Engine, remote)
        finally:
            await remote.close()
        return
    try:
        store = open_store(state.store_url)
    except ValueError as exc:
        raise CliError(f"--store {redact_url(state.store_url)}: {exc}", code="BAD_STORE_URL")
    except FlowMonkeyError as exc:
        raise CliError(f"--store: {exc.message}", code=exc.code)
    options = EngineOptions(
        automatic_recovery=recover, http_allow=state.http_allow, base_url=state.base_url
    )
    engine = Engine(store, handlers, FlowRegistry(), options=options)
    async with engine:
        yield engine

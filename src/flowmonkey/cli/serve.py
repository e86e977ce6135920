"""``flowmonkey serve``: the HTTP API (uvicorn) plus, unless ``--no-worker``, a worker.

Exit codes: 0 after a graceful stop (SIGTERM/SIGINT: stop accepting, finish or release
in-flight steps), 1 for an unexpected failure, 2 for configuration errors (bad store URL,
handlers or flows, ``--dev`` off loopback, a store schema of another version).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import sys
from datetime import timedelta
from typing import Any, NoReturn

import click

from flowmonkey import errors
from flowmonkey.cli.options import (
    base_url_option,
    http_allow_option,
    process_flows_option,
    process_handlers_option,
    process_store_option,
)
from flowmonkey.cli.worker import _duration, _group_store, configure_logging

__all__ = ["serve_command"]

log = logging.getLogger("flowmonkey.serve")


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("serve")
@process_store_option
@process_handlers_option
@process_flows_option("Flow file or folder: validated and saved in the store at start; repeatable.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--no-worker",
    is_flag=True,
    help="API only: executions run on separate `flowmonkey worker` processes.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Executions the in-process worker drives at once.",
)
@click.option(
    "--dev", is_flag=True, help="No API keys (every caller is an admin). Only on a loopback --host."
)
@base_url_option
@http_allow_option
@click.option(
    "--max-body",
    type=click.IntRange(min=1024),
    default=1 << 20,
    show_default=True,
    help="Largest request body in bytes (413 above).",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0.001),
    default=200.0,
    show_default=True,
    help="Requests per second per API key.",
)
@click.option(
    "--shutdown-grace",
    callback=_duration,
    metavar="DURATION",
    default="30s",
    show_default=True,
    help="How long in-flight requests and steps may finish.",
)
@click.option(
    "--sse-poll",
    callback=_duration,
    metavar="DURATION",
    default="250ms",
    show_default=True,
    help="How often event streams look for events other processes wrote (PostgreSQL "
    "with ?notify_events=true wakes them at once).",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="json", show_default=True
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--ui/--no-ui",
    default=True,
    show_default=True,
    help="Serve the web dashboard at /ui/ (sign-in with an API key). Set "
    "FLOWMONKEY_UI_SECRET to the same value on every server behind one load balancer.",
)
@click.option(
    "--ui-session",
    callback=_duration,
    metavar="DURATION",
    default="8h",
    show_default=True,
    help="How long a dashboard sign-in lasts.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One JSON line per request (with its X-Request-Id).",
)
def serve_command(
    store_url: str | None,
    handler_modules: tuple[str, ...],
    flow_paths: tuple[str, ...],
    host: str,
    port: int,
    no_worker: bool,
    concurrency: int,
    dev: bool,
    base_url: str | None,
    http_allow: tuple[str, ...],
    max_body: int,
    rate_limit: float,
    shutdown_grace: timedelta,
    sse_poll: timedelta,
    log_format: str,
    log_level: str,
    ui: bool,
    ui_session: timedelta,
    access_log: bool,
) -> None:
    """Serve the HTTP API (and run a worker) until SIGTERM/SIGINT.

    Scale out with `serve --no-worker` behind a load balancer and N `flowmonkey worker`
    on one PostgreSQL database. OpenAPI: /api/v1/openapi.json, Swagger UI: /api/docs.
    """
    if dev and not is_loopback(host):
        _fail(f"--dev turns authentication off; refused on --host {host} (use 127.0.0.1)")
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        _fail("`flowmonkey serve` needs the api extra: pip install 'flowmonkey[api]'")
    from flowmonkey.cli.state import DEFAULT_STORE

    store_url = store_url or _group_store() or DEFAULT_STORE
    configure_logging(log_format, log_level)
    _access_log_lines(access_log)
    settings: dict[str, Any] = {
        "max_body_bytes": max_body, "rate_limit": rate_limit,
        "rate_burst": max(int(rate_limit * 2), 1), "inline": not no_worker,
        "base_url": base_url, "request_log": access_log,
        "shutdown_grace": shutdown_grace.total_seconds(),
        "event_poll_interval": max(sse_poll.total_seconds(), 0.01),
        "ui": ui, "ui_session_ttl": max(ui_session.total_seconds(), 1.0),
        # From the environment only: a secret never goes on a command line (ps shows it).
        "ui_secret": os.environ.get("FLOWMONKEY_UI_SECRET") or None,
    }  # fmt: skip
    engine_options = {"http_allow": http_allow, "base_url": base_url}
    code = asyncio.run(
        _main(store_url, handler_modules, flow_paths, host, port, no_worker, concurrency,
              dev, settings, shutdown_grace.total_seconds(), engine_options)
    )  # fmt: skip
    sys.exit(code)


def _access_log_lines(enabled: bool) -> None:
    """Request lines are JSON already: write them as they are, one per line."""
    access = logging.getLogger("flowmonkey.api.access")
    access.propagate = False
    access.handlers[:] = []
    if enabled:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)


async def _main(
    store_url: str,
    handler_modules: tuple[str, ...],
    flow_paths: tuple[str, ...],
    host: str,
    port: int,
    no_worker: bool,
    concurrency: int,
    dev: bool,
    settings: dict[str, Any],
    grace: float,
    engine_options: dict[str, Any],
) -> int:
    import uvicorn

    from flowmonkey.api import ApiSettings, create_app
    from flowmonkey.definitions.loader import load_flows
    from flowmonkey.definitions.registry import FlowRegistry
    from flowmonkey.engine.engine import Engine
    from flowmonkey.engine.options import EngineOptions
    from flowmonkey.handlers.registry import HandlerRegistry
    from flowmonkey.stores import open_store, redact_url

    try:
        store = open_store(store_url)
        handlers = HandlerRegistry()
        for module in handler_modules:
            handlers.register_module(module)
        flows = load_flows(flow_paths, handler_types=handlers.types() if not no_worker else None)
    except (errors.FlowMonkeyError, ValueError) as exc:
        _fail(str(exc))
    engine = Engine(store, handlers, FlowRegistry(), options=EngineOptions(**engine_options))
    try:
        await engine.initialize()
        for flow in flows:
            await engine.save_flow(flow)
        if not dev:
            await _first_admin_key(engine)
    except errors.SchemaVersionError as exc:
        await engine.close()
        _fail(f"refusing to start: {exc}")
    except errors.FlowMonkeyError as exc:
        await engine.close()
        _fail(str(exc))
    from flowmonkey.tracing import configure_from_env

    stop_tracing = configure_from_env(engine)
    worker = None if no_worker else _worker(engine, concurrency, grace)
    app = create_app(
        engine, auth=not dev, settings=ApiSettings(**settings), owns_engine=True, worker=worker
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
        timeout_graceful_shutdown=max(int(grace), 1), server_header=False,
        http="httptools", loop="auto",
    )  # fmt: skip
    server = uvicorn.Server(config)
    log.info(
        "serving %s on http://%s:%d (%s, %d flow(s) loaded, worker %s)", redact_url(store_url),
        host, port, "NO AUTH (--dev)" if dev else "API keys", len(flows),
        "off" if no_worker else f"on, concurrency {concurrency}",
    )  # fmt: skip
    # uvicorn re-raises the stop signal after its graceful shutdown; with these no-op
    # handlers in place that ends here and `serve` exits 0 as documented.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        await server.serve()
    except OSError as exc:
        log.error("cannot serve: %s", exc)
        return 1
    finally:
        if stop_tracing is not None:
            stop_tracing()
    return 0 if server.started else 1


def _worker(engine: Any, concurrency: int, grace: float) -> Any:
    from flowmonkey.coordination.local import LocalWakeSignaler
    from flowmonkey.worker.options import WorkerOptions
    from flowmonkey.worker.worker import Worker

    # A store that NOTIFYs across processes (PostgreSQL) brings its own listener; else
    # wake the in-process worker directly when the API creates or resumes something.
    signaler = None if hasattr(engine.store, "wake_signaler") else LocalWakeSignaler()
    options = WorkerOptions(concurrency=concurrency, shutdown_grace=grace, poll_interval=1.0)
    return Worker(engine, options, wake_signaler=signaler)


async def _first_admin_key(engine: Any) -> None:
    """With no key in the store, create an admin key and print it once on stderr."""
    from flowmonkey.model.keys import new_api_key

    if await engine.store.list_api_keys():
        return
    secret, record = new_api_key(
        name="first-admin", tenant="*", scopes=("read", "write", "admin"),
        now=engine.clock.now(),
    )  # fmt: skip
    await engine.store.create_api_key(record)
    click.echo(
        f"Created the first API key (admin, every tenant); it is shown only now:\n\n"
        f"    {secret}\n\n"
        f"Send it as `Authorization: Bearer <key>`. Make more with\n"
        f"    flowmonkey keys create --name NAME --tenant T --scope read --scope write\n"
        f"and revoke this one with `flowmonkey keys revoke {record.id}` when you have.",
        err=True,
    )

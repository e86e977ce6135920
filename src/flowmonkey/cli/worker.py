"""``flowmonkey worker`` and ``flowmonkey migrate``.

Both are standalone click commands; ``register(group)`` adds them to the ``flowmonkey``
group. ``python -m flowmonkey.cli.worker ...`` runs the worker command on its own.

Exit codes of ``worker``: 0 after a graceful stop (SIGTERM/SIGINT), 1 for an
unexpected failure or an unhealthy ``--check``, 2 for configuration errors (bad store
URL, handlers or flows) and for a store whose schema version does not match.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import click
import orjson

from flowmonkey import errors
from flowmonkey.cli.options import (
    base_url_option,
    http_allow_option,
    process_flows_option,
    process_handlers_option,
    process_store_option,
)
from flowmonkey.durations import parse_duration

__all__ = ["JsonFormatter", "migrate_command", "register", "worker_command"]

DEFAULT_HEALTH_PORT = 8087
"""``--check`` probes this port when ``--health-port`` is not given."""

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every ``extra`` field
    (``worker_id``, ``execution_id``, ``step``, ...), for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and value is not None:
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(log_format: str, level: str) -> None:
    """Send logs to stderr as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    """Click callback: plain seconds (``2``, ``0.5``) or ``"500ms"``, ``"30s"``, ``"5m"``."""
    if value is None:
        return None
    try:
        return timedelta(seconds=float(value))
    except ValueError:
        pass
    try:
        return parse_duration(value, field=param.name or "duration")
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param)


def _group_store() -> str | None:
    """The ``flowmonkey --store URL`` given before the command name, if any."""
    ctx = click.get_current_context(silent=True)
    url = getattr(ctx.obj, "store_url", None) if ctx is not None else None
    return url if isinstance(url, str) and url else None


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@click.command("worker")
@process_store_option
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Executions driven at once by this process.",
)
@process_handlers_option
@process_flows_option("Flow file or directory to load; repeatable.")
@click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    envvar="FLOWMONKEY_HEALTH_PORT",
    help="Serve GET /healthz on this port (with --check: the port to probe).",
)
@click.option(
    "--health-host", default="127.0.0.1", show_default=True, help="Interface of the health server."
)
@click.option(
    "--redis",
    "redis_url",
    envvar="FLOWMONKEY_REDIS",
    metavar="URL",
    help="Redis URL for wake signals between processes [env FLOWMONKEY_REDIS].",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--poll-interval",
    callback=_duration,
    metavar="DURATION",
    default="1s",
    show_default=True,
    help="Polling fallback when no wake signal arrives.",
)
@click.option(
    "--scheduler-interval",
    callback=_duration,
    metavar="DURATION",
    default="0.5s",
    show_default=True,
)
@click.option(
    "--reaper-interval", callback=_duration, metavar="DURATION", default="5s", show_default=True
)
@click.option(
    "--lease-for",
    callback=_duration,
    metavar="DURATION",
    default=None,
    help="Lease length; a crashed worker's executions resume after it [30s].",
)
@click.option(
    "--shutdown-grace",
    callback=_duration,
    metavar="DURATION",
    default="30s",
    show_default=True,
    help="How long in-flight steps may finish after SIGTERM.",
)
@click.option(
    "--retention",
    callback=_duration,
    metavar="DURATION",
    default=None,
    help="Purge finished executions this long after they finished (e.g. 30d) [keep forever].",
)
@click.option(
    "--purge-interval",
    callback=_duration,
    metavar="DURATION",
    default="10m",
    show_default=True,
    help="How often the retention pass runs.",
)
@click.option(
    "--schedules/--no-schedules",
    "fire_schedules",
    default=True,
    show_default=True,
    help="Fire due cron schedules (each scheduled time fires once, whatever the workers).",
)
@click.option("--worker-id", default=None, help="Lease owner id [hostname-pid-random].")
@http_allow_option
@base_url_option
@click.option(
    "--check",
    is_flag=True,
    help="Only probe a local worker's health endpoint: exit 0 if healthy, else 1.",
)
def worker_command(
    store_url: str | None,
    concurrency: int,
    handler_modules: tuple[str, ...],
    flow_paths: tuple[str, ...],
    health_port: int | None,
    health_host: str,
    redis_url: str | None,
    log_format: str,
    log_level: str,
    poll_interval: timedelta,
    scheduler_interval: timedelta,
    reaper_interval: timedelta,
    lease_for: timedelta | None,
    shutdown_grace: timedelta,
    retention: timedelta | None,
    purge_interval: timedelta,
    fire_schedules: bool,
    worker_id: str | None,
    http_allow: tuple[str, ...],
    base_url: str | None,
    check: bool,
) -> None:
    """Claim and run executions from the store until SIGTERM/SIGINT.

    Run as many as you like against one PostgreSQL database (or one SQLite file on one
    machine); a second signal skips the shutdown grace.
    """
    if check:
        from flowmonkey.worker.health import check_health

        port = health_port if health_port is not None else DEFAULT_HEALTH_PORT
        host = "127.0.0.1" if health_host in ("0.0.0.0", "::") else health_host
        healthy = asyncio.run(check_health(port, host))
        click.echo(f"worker at {host}:{port} is {'healthy' if healthy else 'NOT healthy'}")
        sys.exit(0 if healthy else 1)
    store_url = store_url or _group_store()
    if not store_url:
        raise click.UsageError("--store URL is required (or set FLOWMONKEY_STORE)")
    configure_logging(log_format, log_level)
    from flowmonkey.worker.options import WorkerOptions, default_worker_id

    try:
        options = WorkerOptions(
            concurrency=concurrency,
            poll_interval=poll_interval.total_seconds(),
            scheduler_interval=scheduler_interval.total_seconds(),
            reaper_interval=reaper_interval.total_seconds(),
            lease_for=lease_for,
            shutdown_grace=shutdown_grace.total_seconds(),
            purge_interval=purge_interval.total_seconds(),
            worker_id=worker_id or default_worker_id(),
            health_port=health_port,
            health_host=health_host,
            fire_schedules=fire_schedules,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc))
    if retention is not None and retention <= timedelta(0):
        raise click.UsageError("--retention must be positive")
    engine_kwargs = {"http_allow": http_allow, "base_url": base_url, "retention": retention}
    code = asyncio.run(
        _serve(store_url, handler_modules, flow_paths, redis_url, options, engine_kwargs)
    )
    sys.exit(code)


async def _serve(
    store_url: str,
    handler_modules: tuple[str, ...],
    flow_paths: tuple[str, ...],
    redis_url: str | None,
    options: Any,
    engine_kwargs: dict[str, Any] | None = None,
) -> int:
    from flowmonkey.definitions.loader import load_flows
    from flowmonkey.definitions.registry import FlowRegistry
    from flowmonkey.engine.engine import Engine
    from flowmonkey.engine.options import EngineOptions
    from flowmonkey.handlers.registry import HandlerRegistry
    from flowmonkey.stores import open_store, redact_url
    from flowmonkey.worker.worker import Worker

    log = logging.getLogger("flowmonkey.worker")
    try:
        store = open_store(store_url)
        handlers = HandlerRegistry()
        for module in handler_modules:
            handlers.register_module(module)
        flows = FlowRegistry(load_flows(flow_paths, handler_types=handlers.types()))
    except (errors.FlowMonkeyError, ValueError) as exc:
        _fail(str(exc), 2)
    engine_options = EngineOptions(
        lease_for=options.lease_for or EngineOptions().lease_for, **(engine_kwargs or {})
    )
    engine = Engine(store, handlers, flows, options=engine_options)
    signaler = None
    if redis_url:
        from flowmonkey.coordination.redis import RedisWakeSignaler

        signaler = RedisWakeSignaler.from_url(redis_url)
    log.info(
        "store %s; %d handler type(s), %d flow(s)", redact_url(store_url),
        len(handlers), len(flows), extra={"worker_id": options.worker_id},
    )  # fmt: skip
    from flowmonkey.tracing import configure_from_env

    stop_tracing = configure_from_env(engine)
    worker = Worker(engine, options, wake_signaler=signaler)
    try:
        await worker.run()
    except errors.SchemaVersionError as exc:
        log.error("refusing to start: %s", exc, extra={"worker_id": options.worker_id})
        return 2
    except errors.StoreError as exc:
        log.error("cannot open the store: %s", exc, extra={"worker_id": options.worker_id})
        return 2
    except OSError as exc:
        log.error("cannot start: %s", exc, extra={"worker_id": options.worker_id})
        return 1
    finally:
        await engine.close()
        if stop_tracing is not None:
            stop_tracing()
    return 0


@click.command("migrate")
@click.option(
    "--store",
    "store_url",
    envvar="FLOWMONKEY_STORE",
    metavar="URL",
    help="Store URL [env FLOWMONKEY_STORE].",
)
def migrate_command(store_url: str | None) -> None:
    """Create or upgrade the store's schema to this flowmonkey's version."""
    from flowmonkey.stores import redact_url

    store_url = store_url or _group_store()
    if not store_url:
        raise click.UsageError("--store URL is required (or set FLOWMONKEY_STORE)")

    try:
        version = asyncio.run(_migrate(store_url))
    except errors.SchemaVersionError as exc:
        _fail(str(exc), 2)
    except (errors.FlowMonkeyError, ValueError) as exc:
        _fail(str(exc), 1)
    where = redact_url(store_url)
    click.echo(f"{where}: schema is at version {version}" if version is not None
               else f"{where}: schema is up to date")  # fmt: skip


async def _migrate(store_url: str) -> int | None:
    from flowmonkey.stores import open_store

    store: Any = open_store(store_url)
    migrate = getattr(store, "migrate", None)
    if callable(migrate):
        # PostgreSQL: migrating is explicit and works without opening the pool.
        return int(await migrate())
    # SQLite and memory migrate when opened.
    await store.initialize()
    await store.close()
    return None


def register(group: click.Group) -> None:
    """Add ``worker`` and ``migrate`` to the ``flowmonkey`` command group."""
    group.add_command(worker_command)
    group.add_command(migrate_command)


if __name__ == "__main__":
    worker_command(prog_name="flowmonkey worker")

"""``flowmonkey cancel|retry --filter K=V ... [--dry-run]``: bulk actions from the CLI.

Filters: ``status=S`` (repeatable), ``flow_id=F``, ``correlation_id=C``, ``tenant_id=T``,
``created_before=ISO``, ``created_after=ISO``. At most 10,000 executions per call.
Against a store the retried executions are left ``pending`` for a worker (or ``tick``);
with ``--server`` the server's bulk route does the work. Exit 0 when every matched
execution was acted on, 1 when some could not be (each listed with its error code).
"""

from __future__ import annotations

import typing as t
from datetime import datetime

import click

from flowmonkey.cli.errors import EXIT_FAILED, CliError
from flowmonkey.cli.output import Output
from flowmonkey.cli.state import CliState, open_engine, run_async
from flowmonkey.engine import bulk
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores.base import ExecutionQuery

__all__ = ["filter_option", "run_bulk"]

_KEYS = ("status", "flow_id", "correlation_id", "tenant_id", "created_before", "created_after")

F = t.TypeVar("F", bound=t.Callable[..., t.Any])


def filter_option(fn: F) -> F:
    """``--filter K=V`` (repeatable) and ``--dry-run``."""
    fn = click.option(
        "--dry-run", is_flag=True, help="With --filter: report what would happen, change nothing."
    )(fn)
    return click.option(
        "--filter",
        "filters",
        multiple=True,
        metavar="KEY=VALUE",
        help=f"Act on every execution matching all filters ({', '.join(_KEYS)}); repeatable.",
    )(fn)


def _parse(filters: tuple[str, ...]) -> dict[str, t.Any]:
    parsed: dict[str, t.Any] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in _KEYS or not value:
            raise CliError(
                f"--filter {item!r}: use KEY=VALUE with KEY one of {', '.join(_KEYS)}",
                code="BAD_FILTER",
            )
        if key == "status":
            try:
                ExecutionStatus(value)
            except ValueError:
                raise CliError(f"--filter status={value}: not a status", code="BAD_FILTER")
            parsed.setdefault("status", []).append(value)
        elif key.startswith("created_"):
            try:
                at = datetime.fromisoformat(value)
            except ValueError:
                raise CliError(f"--filter {key}={value}: not an ISO 8601 time", code="BAD_FILTER")
            if at.tzinfo is None:
                raise CliError(f"--filter {key}={value}: give a UTC offset", code="BAD_FILTER")
            parsed[key] = value
        else:
            parsed[key] = value
    return parsed


def run_bulk(
    state: CliState,
    action: bulk.Action,
    filters: tuple[str, ...],
    *,
    dry_run: bool,
    reason: str | None = None,
) -> t.NoReturn:
    """Do the bulk action, print the outcome, exit (0 all done, 1 some refused)."""
    out = Output(json_mode=state.json_output)
    parsed = _parse(filters)

    async def go() -> dict[str, t.Any]:
        async with open_engine(state) as engine:
            client = getattr(engine, "client", None)
            if client is not None:  # --server
                tenant = parsed.pop("tenant_id", None)
                body_filter = dict(parsed)
                result: dict[str, t.Any] = await client.bulk(
                    action, filter=body_filter, reason=reason, dry_run=dry_run,
                    **({"tenant_id": tenant} if tenant else {}),
                )  # fmt: skip
                return result
            query = ExecutionQuery(
                status=[ExecutionStatus(s) for s in parsed.get("status", [])] or None,
                flow_id=parsed.get("flow_id"),
                tenant_id=parsed.get("tenant_id"),
                correlation_id=parsed.get("correlation_id"),
                created_before=_time(parsed.get("created_before")),
                created_after=_time(parsed.get("created_after")),
            )
            ids = await bulk.select(engine, query)
            done = await bulk.apply(engine, action, ids, reason=reason, dry_run=dry_run)
            return done.to_dict()

    result = run_async(go())
    if out.json_mode:
        out.document(result)
    else:
        verb = {"cancel": "cancelled", "retry": "retried"}[action]
        if dry_run:
            out.line(f"dry run: {result['succeeded']} of {result['matched']} matched "
                     f"execution(s) would be {verb}")  # fmt: skip
        else:
            out.line(f"{verb} {result['succeeded']} of {result['matched']} matched execution(s)")
        for failure in result["failed"]:
            out.line(f"  {failure['id']}: {failure['code']}", "dim")
        if action == "retry" and not dry_run and result["succeeded"] and state.server_url is None:
            out.line("they are pending: a `flowmonkey worker` (or `tick`) runs them", "dim")
    raise SystemExit(EXIT_FAILED if result["failed"] else 0)


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)

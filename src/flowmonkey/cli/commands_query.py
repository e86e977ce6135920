"""Read-only commands: ``status``, ``history``, ``list``, ``events`` and ``flows``."""

from __future__ import annotations

import typing as t

import click

from flowmonkey.cli.options import common_options
from flowmonkey.cli.output import STATUS_STYLES, Output, format_duration, format_time, to_json
from flowmonkey.cli.state import get_state, open_engine, run_async
from flowmonkey.engine.engine import Engine
from flowmonkey.errors import ExecutionNotFound
from flowmonkey.model.execution import Execution, ExecutionStatus

__all__ = ["events", "flows", "history", "list_executions", "status"]

_STATUSES = [str(s) for s in ExecutionStatus]


async def _get(engine: Engine, execution_id: str) -> Execution:
    execution = await engine.get(execution_id)
    if execution is None:
        raise ExecutionNotFound(execution_id)
    return execution


@click.command()
@click.argument("execution_id", metavar="ID")
@common_options
def status(execution_id: str) -> None:
    """Show the status, position, error and context of execution ID."""
    state = get_state()
    out = Output(json_mode=state.json_output)

    async def go() -> Execution:
        async with open_engine(state) as engine:
            return await _get(engine, execution_id)

    execution = run_async(go())
    if out.json_mode:
        out.document(execution.to_dict())
        return
    out.execution(execution)
    out.line(
        f"created {format_time(execution.created_at)}, updated {format_time(execution.updated_at)}",
        "dim",
    )


@click.command()
@click.argument("execution_id", metavar="ID")
@common_options
def history(execution_id: str) -> None:
    """Show every step attempt of execution ID (a table of step records)."""
    state = get_state()
    out = Output(json_mode=state.json_output)

    async def go() -> Execution:
        async with open_engine(state) as engine:
            return await _get(engine, execution_id)

    execution = run_async(go())
    if out.json_mode:
        out.document(
            {"execution_id": execution.id, "history": [h.to_dict() for h in execution.history]}
        )
        return
    rows: list[list[str]] = []
    styles: list[str | None] = []
    for i, record in enumerate(execution.history, start=1):
        error = record.error or {}
        message = f"{error.get('code')}: {error.get('message')}" if error else ""
        rows.append(
            [str(i), record.step_id, record.handler_type, str(record.attempt),
             str(record.run_number), record.outcome, format_time(record.started_at),
             format_duration(record.duration_ms), message]
        )  # fmt: skip
        styles.append("red" if record.outcome == "failure" else None)
    headers = ["#", "step", "handler", "attempt", "run", "outcome", "started", "took", "error"]
    out.table(headers, rows, title=f"history of {execution.id}", styles=styles, style_column=5)
    if not rows:
        out.line("(no steps recorded yet)", "dim")


@click.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(_STATUSES),
    help="Only these statuses (repeatable).",
)
@click.option("--flow", "flow_id", metavar="F", help="Only executions of flow F.")
@click.option("--tenant", metavar="T", help="Only executions of tenant T.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Page size."
)
@click.option("--cursor", metavar="C", help="The next cursor printed by the previous page.")
@common_options
def list_executions(
    statuses: tuple[str, ...],
    flow_id: str | None,
    tenant: str | None,
    limit: int,
    cursor: str | None,
) -> None:
    """List executions, newest first (one page; prints the next cursor)."""
    state = get_state()
    out = Output(json_mode=state.json_output)

    async def go() -> t.Any:
        async with open_engine(state) as engine:
            return await engine.list(
                status=list(statuses) or None, flow_id=flow_id, tenant_id=tenant,
                limit=limit, cursor=cursor,
            )  # fmt: skip

    page = run_async(go())
    if out.json_mode:
        out.document(
            {"items": [e.header_dict() for e in page.items], "next_cursor": page.next_cursor}
        )
        return
    rows = [
        [e.id, f"{e.flow_id}@{e.flow_version}", str(e.status), e.current_step_id or "-",
         format_time(e.created_at), format_time(e.updated_at)]
        for e in page.items
    ]  # fmt: skip
    styles = [STATUS_STYLES.get(str(e.status)) for e in page.items]
    headers = ["id", "flow", "status", "step", "created", "updated"]
    out.table(headers, rows, styles=styles, style_column=2)
    if not rows:
        out.line("(no executions)", "dim")
    if page.next_cursor:
        out.line(f"next cursor: {page.next_cursor}", "dim")


@click.command()
@click.argument("execution_id", metavar="ID")
@common_options
def events(execution_id: str) -> None:
    """Show the persisted event log of execution ID, in order."""
    state = get_state()
    out = Output(json_mode=state.json_output)

    async def go() -> t.Any:
        async with open_engine(state) as engine:
            await _get(engine, execution_id)
            return await engine.events(execution_id)

    log = run_async(go())
    if out.json_mode:
        out.document({"execution_id": execution_id, "events": [e.to_dict() for e in log]})
        return
    rows = []
    for event in log:
        data = {k: v for k, v in event.data.items() if k not in ("execution_id", "step_id")}
        rows.append(
            [str(event.sequence), format_time(event.timestamp), event.type,
             str(event.data.get("step_id") or ""), to_json(data, indent=None) if data else ""]
        )  # fmt: skip
    out.table(["seq", "time", "type", "step", "data"], rows, title=f"events of {execution_id}")


@click.command()
@common_options
def flows() -> None:
    """List the flows saved in the store, with their versions (newest first)."""
    state = get_state()
    out = Output(json_mode=state.json_output)

    async def go() -> list[dict[str, t.Any]]:
        async with open_engine(state) as engine:
            found = []
            for stored in await engine.store.list_flows():
                versions = await engine.store.flow_versions(stored.flow_id)
                found.append(
                    {"id": stored.flow_id, "name": stored.definition.get("name"),
                     "latest": stored.version, "versions": versions,
                     "steps": len(stored.definition.get("steps") or {}),
                     "saved_at": stored.created_at.isoformat()}
                )  # fmt: skip
            return found

    found = run_async(go())
    if out.json_mode:
        out.document({"flows": found})
        return
    rows = [
        [f["id"], f["latest"], ", ".join(f["versions"]), f["name"] or "", str(f["steps"])]
        for f in found
    ]
    out.table(["flow", "latest", "versions", "name", "steps"], rows)
    if not rows:
        out.line("(no flows saved yet: `flowmonkey run FLOW_FILE` saves one)", "dim")

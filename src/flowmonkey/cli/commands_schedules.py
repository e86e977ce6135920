"""``flowmonkey schedules create|list|show|pause|unpause|trigger|runs|delete``.

The CLI works on the store directly (``--store``); the flow of a new schedule must be
saved in that store (``flowmonkey worker --flows`` / ``serve --flows`` / the API).
Workers fire the schedules; ``trigger`` starts one run now (a worker runs it).
"""

from __future__ import annotations

import typing as t

import click

from flowmonkey.cli.options import common_options
from flowmonkey.cli.output import Output, format_time
from flowmonkey.cli.state import get_state, open_engine, parse_json_object, run_async
from flowmonkey.engine.engine import Engine
from flowmonkey.model.schedules import CATCHUP_POLICIES, OVERLAP_POLICIES, Schedule, ScheduleRun
from flowmonkey.stores.cursors import decode_time_key, encode_key

__all__ = ["schedules"]

T = t.TypeVar("T")


def _with_engine(action: t.Callable[[Engine], t.Awaitable[T]]) -> T:
    state = get_state()

    async def go() -> T:
        async with open_engine(state) as engine:
            return await action(engine)

    return run_async(go())


def _show(out: Output, schedule: Schedule, engine_times: list[str] | None = None) -> None:
    if out.json_mode:
        body = schedule.to_dict()
        if engine_times is not None:
            body["next_fire_times"] = engine_times
        out.document(body)
        return
    state = "paused" if schedule.paused else "active"
    out.line(f"{schedule.id}  {schedule.flow_id}  {schedule.cron!r} {schedule.timezone}  {state}")
    out.line(f"next fire: {format_time(schedule.next_fire_at)}", "dim")
    for when in engine_times or []:
        out.line(f"  {when}", "dim")


@click.group()
def schedules() -> None:
    """Cron schedules that start flows (fired by every worker, exactly once)."""


@schedules.command("create")
@click.option("--id", "schedule_id", default=None, help="Schedule id (default: generated).")
@click.option("--flow", "flow_id", required=True, help="Flow to start.")
@click.option("--version", default=None, help="Flow version (default: latest).")
@click.option("--cron", required=True, help="5 fields, 6 with seconds first, or @hourly...")
@click.option("--timezone", "timezone", default="UTC", show_default=True, help="IANA zone.")
@click.option("--input", "input_json", default=None, help="Input JSON object.")
@click.option("--overlap", type=click.Choice(OVERLAP_POLICIES), default="skip", show_default=True)
@click.option("--catchup", type=click.Choice(CATCHUP_POLICIES), default="latest", show_default=True)
@click.option("--catchup-window", default="1h", show_default=True)
@click.option("--jitter", default="0s", show_default=True)
@click.option("--start-at", default=None, help="ISO 8601 time of the first possible fire.")
@click.option("--end-at", default=None, help="ISO 8601 time after which it never fires.")
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--tenant", "tenant_id", default=None)
@common_options
def create(schedule_id: str | None, input_json: str | None, **values: t.Any) -> None:
    """Create a schedule (exit 2 listing every problem of a bad definition)."""
    out = Output(json_mode=get_state().json_output)
    values["input"] = parse_json_object(input_json, "--input")
    if schedule_id:
        values["id"] = schedule_id
    values = {k: v for k, v in values.items() if v is not None}
    made = _with_engine(lambda engine: engine.schedules.create(**values))
    _show(out, made)


@schedules.command("list")
@click.option("--tenant", "tenant_id", default=None)
@common_options
def list_schedules(tenant_id: str | None) -> None:
    """Every schedule with its next fire time."""
    out = Output(json_mode=get_state().json_output)
    found = _with_engine(lambda engine: engine.schedules.list(tenant_id=tenant_id))
    if out.json_mode:
        out.document({"items": [s.to_dict() for s in found]})
        return
    rows = [
        [
            s.id,
            s.flow_id,
            s.cron,
            s.timezone,
            "paused" if s.paused else "active",
            format_time(s.next_fire_at),
        ]
        for s in found
    ]
    out.table(["id", "flow", "cron", "zone", "state", "next fire"], rows)


@schedules.command("show")
@click.argument("schedule_id", metavar="ID")
@common_options
def show(schedule_id: str) -> None:
    """One schedule and its next five fire times."""
    out = Output(json_mode=get_state().json_output)

    async def go(engine: Engine) -> tuple[Schedule, list[str]]:
        found = await engine.schedules.get(schedule_id)
        return found, [x.isoformat() for x in engine.schedules.next_times(found)]

    found, times = _with_engine(go)
    _show(out, found, times)


@schedules.command("pause")
@click.argument("schedule_id", metavar="ID")
@common_options
def pause(schedule_id: str) -> None:
    """Stop firing ID until unpaused."""
    out = Output(json_mode=get_state().json_output)
    _show(out, _with_engine(lambda engine: engine.schedules.pause(schedule_id)))


@schedules.command("unpause")
@click.argument("schedule_id", metavar="ID")
@common_options
def unpause(schedule_id: str) -> None:
    """Fire ID again from the next time after now."""
    out = Output(json_mode=get_state().json_output)
    _show(out, _with_engine(lambda engine: engine.schedules.unpause(schedule_id)))


@schedules.command("trigger")
@click.argument("schedule_id", metavar="ID")
@click.option(
    "--overlap",
    type=click.Choice(OVERLAP_POLICIES),
    default=None,
    help="Override the schedule's overlap policy for this run.",
)
@common_options
def trigger(schedule_id: str, overlap: str | None) -> None:
    """Run ID now (a worker runs the execution)."""
    out = Output(json_mode=get_state().json_output)
    run = _with_engine(lambda engine: engine.schedules.trigger(schedule_id, overlap=overlap))
    if out.json_mode:
        out.document(run.to_dict())
    else:
        out.line(f"{run.outcome} {run.execution_id or ''} ({run.reason or 'now'})")


@schedules.command("runs")
@click.argument("schedule_id", metavar="ID")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--cursor", metavar="C", help="The next cursor printed by the previous page.")
@common_options
def runs(schedule_id: str, limit: int, cursor: str | None) -> None:
    """The runs history of ID, newest first (one page; prints the next cursor)."""
    out = Output(json_mode=get_state().json_output)

    async def page(engine: Engine) -> list[ScheduleRun]:
        # The same cursors as GET /schedules/{id}/runs: one more run tells if there are more.
        before = None if cursor is None else decode_time_key(cursor, "schedule_runs")[0]
        return await engine.schedules.runs(schedule_id, limit=limit + 1, before=before)

    found = _with_engine(page)
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        last = found[-1]
        next_cursor = encode_key("schedule_runs", last.scheduled_for.isoformat(), schedule_id)
    if out.json_mode:
        out.document({"items": [r.to_dict() for r in found], "next_cursor": next_cursor})
        return
    rows = [
        [
            format_time(r.scheduled_for),
            format_time(r.fired_at),
            r.outcome,
            r.execution_id or "",
            r.reason or "",
        ]
        for r in found
    ]
    out.table(["scheduled for", "fired", "outcome", "execution", "reason"], rows)
    if next_cursor:
        out.line(f"next cursor: {next_cursor}", "dim")


@schedules.command("delete")
@click.argument("schedule_id", metavar="ID")
@common_options
def delete(schedule_id: str) -> None:
    """Delete ID and its runs history."""
    _with_engine(lambda engine: engine.schedules.delete(schedule_id))
    Output(json_mode=get_state().json_output).line(f"deleted {schedule_id}")

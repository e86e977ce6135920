"""``flowmonkey schedules ...``: create (with every problem of a bad one), list, show,
pause, unpause, trigger, runs, delete."""

from __future__ import annotations

import asyncio
import json

from clitools import Invoke

from flowmonkey import FlowBuilder
from flowmonkey.engine.engine import Engine
from flowmonkey.stores.sqlite import SqliteStore


def save_flow(store_url: str) -> None:
    async def go() -> None:
        async with Engine(SqliteStore(store_url.removeprefix("sqlite:///"))) as engine:
            await engine.save_flow(FlowBuilder("report").step("s", "noop").build())

    asyncio.run(go())


def test_schedule_lifecycle(invoke: Invoke, store_url: str) -> None:
    save_flow(store_url)
    made = invoke(
        "schedules",
        "create",
        "--id",
        "nightly",
        "--flow",
        "report",
        "--cron",
        "30 2 * * *",
        "--timezone",
        "America/New_York",
        "--input",
        '{"k": 1}',
        "--json",
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["next_fire_at"]
    listed = invoke("schedules", "list")
    assert "nightly" in listed.output and "active" in listed.output
    shown = json.loads(invoke("schedules", "show", "nightly", "--json").output)
    assert len(shown["next_fire_times"]) == 5
    assert "paused" in invoke("schedules", "pause", "nightly").output
    assert "active" in invoke("schedules", "unpause", "nightly").output
    run = json.loads(invoke("schedules", "trigger", "nightly", "--json").output)
    assert run["outcome"] == "started" and run["execution_id"]
    runs = invoke("schedules", "runs", "nightly")
    assert "started" in runs.output
    assert invoke("schedules", "delete", "nightly").exit_code == 0
    gone = invoke("schedules", "show", "nightly")
    assert gone.exit_code == 2 and "not found" in gone.output


def test_a_bad_schedule_names_every_problem_and_exits_2(invoke: Invoke, store_url: str) -> None:
    save_flow(store_url)
    bad = invoke(
        "schedules",
        "create",
        "--flow",
        "report",
        "--cron",
        "0 25 * * *",
        "--timezone",
        "Atlantis/Capital",
        "--end-at",
        "yesterday",
    )
    assert bad.exit_code == 2
    for part in ("cron", "timezone", "end_at"):
        assert part in bad.output
    assert "nightly" not in invoke("schedules", "list").output


def test_runs_page_with_the_printed_cursor(invoke: Invoke, store_url: str) -> None:
    save_flow(store_url)
    made = invoke("schedules", "create", "--id", "often", "--flow", "report", "--cron", "@hourly")
    assert made.exit_code == 0, made.output
    for _ in range(3):
        assert invoke("schedules", "trigger", "often", "--json").exit_code == 0
    first = json.loads(invoke("schedules", "runs", "often", "--limit", "2", "--json").output)
    assert len(first["items"]) == 2 and first["next_cursor"]
    text = invoke("schedules", "runs", "often", "--limit", "2")
    assert f"next cursor: {first['next_cursor']}" in text.output
    rest = invoke("schedules", "runs", "often", "--limit", "2", "--cursor", first["next_cursor"])
    second = json.loads(
        invoke(
            "schedules", "runs", "often", "--limit", "2", "--cursor", first["next_cursor"], "--json"
        ).output
    )
    assert rest.exit_code == 0 and len(second["items"]) == 1 and second["next_cursor"] is None
    times = [r["scheduled_for"] for r in first["items"] + second["items"]]
    assert times == sorted(set(times), reverse=True)
    bad = invoke("schedules", "runs", "often", "--cursor", "garbage!")
    assert bad.exit_code != 0 and "cursor" in bad.output.lower()

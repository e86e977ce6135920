"""``flowmonkey.client`` and the CLI's ``--server``: the same answers as the engine and
the same output and exit codes as ``--store``, against a real ``flowmonkey serve``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from flowmonkey import errors
from flowmonkey.cli import cli
from flowmonkey.client import ApiError, Client
from flowmonkey.model.execution import ExecutionStatus

from .serving import Server, serve

FLOW = """
id: approval
version: 1.0.0
initialStepId: ask
steps:
  ask:
    type: ask
    outputKey: answer
    transitions: {onSuccess: check}
  check:
    type: check
    transitions: {onSuccess: null}
"""

HANDLERS = """
from flowmonkey import Result, handler

@handler("ask")
async def ask(ctx):
    return Result.wait(reason="waiting for a decision")

@handler("check")
async def check(ctx):
    if (ctx.context.get("answer") or {}).get("ok"):
        return Result.success({"checked": True})
    return Result.failure("NOT_OK", "the answer was not ok")
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    folder = tmp_path_factory.mktemp("remote")
    (folder / "flow.yaml").write_text(FLOW)
    (folder / "handlers.py").write_text(HANDLERS)
    store = f"sqlite:///{folder / 'r.db'}"
    args = ["--store", store, "--flows", "flow.yaml", "--handlers", "handlers.py",
            "--no-access-log"]  # fmt: skip
    with serve(args, folder) as running:
        yield running, store


def local(store: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--store", store, *args])


def remote(server: Server, *args: str) -> Result:
    env = {"FLOWMONKEY_SERVER": server.url, "FLOWMONKEY_API_KEY": server.key or ""}
    return CliRunner().invoke(cli, list(args), env=env)


def start_waiting(server: Server) -> str:
    with server.client() as http:
        body = http.post("/api/v1/executions", json={"flow_id": "approval", "wait": 5}).json()
    assert body["status"] == "waiting", body
    return str(body["id"])


async def test_client_round_trip(server: tuple[Server, str]) -> None:
    running, _ = server
    async with Client(running.url, running.key) as client:
        execution = await client.start("approval", {"n": 1}, wait=5)
        assert execution.status is ExecutionStatus.WAITING
        assert execution.context["n"] == 1
        with pytest.raises(errors.InvalidSignal):
            await client.signal(execution.id, "nope")
        resumed = await client.resume(execution.id, {"ok": True})
        assert resumed.execution.id == execution.id
        events = [e async for e in client.stream_events(execution.id)]
        assert events[-1].type == "execution.completed"
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        with pytest.raises(errors.ExecutionNotWaiting) as caught:
            await client.resume(execution.id, {})
        assert caught.value.status == "completed"
        assert await client.get("missing") is None
        page = await client.list(flow_id="approval", limit=1)
        assert len(page.items) == 1
        history = await client.history(execution.id)
        assert [r.step_id for r in history] == ["ask", "check"]
        cancelled = await client.cancel(execution.id)
        assert cancelled.cancelled is False
    async with Client(running.url, "fmk_wrong") as bad:
        with pytest.raises(ApiError) as denied:
            await bad.list()
        assert denied.value.status == 401


def test_read_commands_match_local_output(server: tuple[Server, str]) -> None:
    running, store = server
    execution_id = start_waiting(running)
    for args in (("status", execution_id), ("history", execution_id),
                 ("events", execution_id), ("list", "--limit", "5"), ("flows",)):  # fmt: skip
        mine = local(store, "--json", *args)
        theirs = remote(running, "--json", *args)
        assert theirs.exit_code == mine.exit_code == 0, (args, theirs.output)
        assert json.loads(theirs.stdout) == json.loads(mine.stdout), args
        human_mine = local(store, *args)
        human_theirs = remote(running, *args)
        assert human_theirs.stdout == human_mine.stdout, args
    missing_local = local(store, "status", "nope")
    missing_remote = remote(running, "status", "nope")
    assert missing_local.exit_code == missing_remote.exit_code == 2
    assert missing_local.stderr.splitlines()[0] == missing_remote.stderr.splitlines()[0]


def test_control_commands_exit_codes_match(server: tuple[Server, str]) -> None:
    running, store = server
    ok, bad = start_waiting(running), start_waiting(running)
    resumed = remote(running, "--json", "resume", ok, "--data", '{"ok": true}')
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["status"] == "completed"
    failed = remote(running, "--json", "signal", bad, "ask", "--payload", '{"ok": false}')
    assert failed.exit_code == 1, failed.output
    assert json.loads(failed.stdout)["status"] == "failed"
    again = remote(running, "--json", "retry", bad)
    assert again.exit_code == 1  # still not ok: failed again
    assert json.loads(again.stdout)["run_number"] == 2
    refused = remote(running, "retry", ok)
    assert refused.exit_code == local(store, "retry", ok).exit_code == 2
    assert remote(running, "cancel", ok).exit_code == local(store, "cancel", ok).exit_code == 2
    waiting = start_waiting(running)
    cancelled = remote(running, "cancel", waiting, "--reason", "no")
    assert cancelled.exit_code == 0
    assert f"cancelled {waiting}" in cancelled.stdout
    assert remote(running, "tick").exit_code == 2


def test_bulk_through_the_server_matches_the_store(server: tuple[Server, str]) -> None:
    running, store = server
    start_waiting(running)
    args = ("--json", "cancel", "--filter", "status=waiting", "--filter", "flow_id=approval",
            "--dry-run")  # fmt: skip
    mine, theirs = local(store, *args), remote(running, *args)
    assert mine.exit_code == theirs.exit_code == 0, theirs.output
    assert json.loads(theirs.stdout) == json.loads(mine.stdout)
    assert json.loads(theirs.stdout)["matched"] >= 1
    done = remote(running, "cancel", "--filter", "status=waiting", "--reason", "bulk")
    assert done.exit_code == 0, done.output
    assert "cancelled" in done.stdout
    after = remote(running, "--json", "list", "--status", "waiting")
    assert json.loads(after.stdout)["items"] == []

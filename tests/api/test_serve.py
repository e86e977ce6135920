"""``flowmonkey serve`` as a real process, and ``flowmonkey keys``."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowmonkey.cli import cli

from .serving import serve, wait_until

FLOW = """
id: slow
version: 1.0.0
initialStepId: work
steps:
  work:
    type: slow
    transitions: {onSuccess: after}
  after:
    type: slow
    transitions: {onSuccess: null}
"""

HANDLERS = """
import asyncio
from pathlib import Path
from flowmonkey import Result, handler

@handler("slow")
async def slow(ctx):
    marker = Path(ctx.context["dir"]) / f"started-{ctx.step.id}"
    marker.write_text("")
    # The step is in flight for a while: long enough for the test's SIGTERM to land.
    await asyncio.sleep(float(ctx.context.get("seconds", 0)))
    return Result.success({"step": ctx.step.id})
"""


@pytest.fixture
def app_files(tmp_path: Path) -> Path:
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "handlers.py").write_text(HANDLERS)
    return tmp_path


def test_dev_is_refused_off_loopback() -> None:
    result = CliRunner().invoke(cli, ["serve", "--dev", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "--dev" in result.output and "0.0.0.0" in result.output


@pytest.mark.slow
def test_serve_first_key_start_wait_and_graceful_sigterm(app_files: Path) -> None:
    store = f"sqlite:///{app_files / 'serve.db'}"
    args = ["--store", store, "--flows", "flow.yaml", "--handlers", "handlers.py"]
    with serve(args, app_files) as server:
        assert server.key is not None, server.proc.text()
        assert "shown only now" in server.proc.text()
        with server.client() as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/readyz").status_code == 200
            unauthorized = client.get("/api/v1/executions", headers={"Authorization": ""})
            assert unauthorized.status_code == 401
            quick = client.post(
                "/api/v1/executions",
                json={"flow_id": "slow", "input": {"dir": str(app_files)}, "wait": 10},
                headers={"X-Request-Id": "quick-1"},
            )
            assert quick.status_code == 201, quick.text
            assert quick.json()["status"] == "completed", quick.json()["error"]
            assert quick.headers["x-request-id"] == "quick-1"
            (app_files / "started-work").unlink()
            # An execution whose first step is in flight when SIGTERM arrives.
            slow = client.post(
                "/api/v1/executions",
                json={"flow_id": "slow", "input": {"dir": str(app_files), "seconds": 1.5}},
            ).json()
        wait_until(lambda: (app_files / "started-work").exists())
        server.proc.proc.send_signal(signal.SIGTERM)
        assert server.proc.proc.wait(timeout=60) == 0
    logs = server.proc.json_lines()
    requests = [line for line in logs if line.get("msg") == "request"]
    assert any(line["request_id"] == "quick-1" and line["status"] == 201 for line in requests)
    # The in-flight step finished (or was released) before the exit: nothing is lost.
    result = CliRunner().invoke(cli, ["--store", store, "--json", "status", slow["id"]])
    doc = json.loads(result.stdout)
    assert doc["status"] in ("pending", "completed", "waiting"), doc
    assert doc["status"] != "running"
    assert [r["step_id"] for r in doc["history"]][:1] == ["work"]
    # A second start finds the key: no new one printed.
    with serve(args, app_files) as again:
        assert again.key is None


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'k.db'}"
    runner = CliRunner()
    created = runner.invoke(
        cli,
        ["--store", store, "--json", "keys", "create", "--name", "ci", "--tenant", "acme",
         "--scope", "read", "--scope", "write", "--expires", "90d"],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    doc = json.loads(created.stdout)
    assert doc["key"].startswith("fmk_") and len(doc["key"]) >= 36
    listed = runner.invoke(cli, ["--store", store, "keys", "list"])
    assert doc["id"] in listed.output and "tenant=acme" in listed.output
    assert doc["key"] not in listed.output
    revoked = runner.invoke(cli, ["--store", store, "keys", "revoke", doc["id"]])
    assert revoked.exit_code == 0
    listed_json = json.loads(
        runner.invoke(cli, ["--store", store, "--json", "keys", "list"]).stdout
    )
    assert listed_json["items"][0]["revoked_at"] is not None
    missing = runner.invoke(cli, ["--store", store, "keys", "revoke", "key_nope"])
    assert missing.exit_code == 2
    bad = runner.invoke(
        cli, ["--store", store, "keys", "create", "--name", "x", "--tenant", "a",
              "--scope", "read", "--expires", "soon"],
    )  # fmt: skip
    assert bad.exit_code == 2

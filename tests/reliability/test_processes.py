"""Issue 9, item 2, with real processes: handler code calling ``sys.exit()`` or raising
``KeyboardInterrupt`` neither stops ``flowmonkey worker`` nor makes ``flowmonkey run``
report success; only a signal stops a worker, gracefully.

(Processes need a store other processes can reach: SQLite and PostgreSQL. The memory
store's in-process behaviour is covered by ``test_handler_exits.py``.)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowmonkey import Engine, FlowBuilder
from flowmonkey.model.execution import ExecutionStatus
from worker.support import Backend, drop_schema, eventually, new_schema, postgres_url

APP = str(Path(__file__).with_name("exit_app.py"))

FLOW_YAML = """\
id: quitter
version: "1.0.0"
initialStepId: quit
steps:
  quit:
    type: {type}
    transitions: {{onSuccess: null}}
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'procs.db'}")
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = new_schema()
    try:
        yield Backend("postgres", postgres_url(dsn, schema))
    finally:
        drop_schema(dsn, schema)


def start_worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    """``flowmonkey worker`` with the exit handlers, logging to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "flowmonkey.cli.worker", "--store", url,
             "--handlers", APP, "--concurrency", "4", "--lease-for", "2s",
             "--poll-interval", "0.1", "--shutdown-grace", "5", "--log-format", "json"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip


@pytest.mark.parametrize("kind", ["exit.sys_exit", "exit.keyboard"])
def test_flowmonkey_run_reports_the_failure(backend: Backend, tmp_path: Path, kind: str) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW_YAML.format(type=kind))
    proc = subprocess.run(
        [sys.executable, "-c", "from flowmonkey.cli.main import main; main()",
         "--store", backend.url, "--json",
         "run", str(flow), "--handlers", APP],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed"
    assert doc["error"]["code"] == "HANDLER_ERROR"
    exception = "SystemExit" if kind == "exit.sys_exit" else "KeyboardInterrupt"
    assert exception in doc["error"]["message"]


async def test_a_handler_cannot_stop_a_worker(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    async with Engine(backend.store()) as engine:
        for kind in ("exit.sys_exit", "exit.keyboard", "exit.ok"):
            await engine.save_flow(FlowBuilder(kind).step("s", kind).build())
        quitters = [(await engine.create(k)).execution.id for k in ("exit.sys_exit",
                                                                    "exit.keyboard")]  # fmt: skip
        worker = start_worker(backend.url, log)
        try:

            async def failed() -> bool:
                found = [await engine.get(i) for i in quitters]
                return all(e is not None and e.status is ExecutionStatus.FAILED for e in found)

            await eventually(failed, timeout=30, what="both quitters failed")
            # The worker is still there and still works.
            assert worker.poll() is None, log.read_text()
            later = (await engine.create("exit.ok")).execution.id

            async def completed() -> bool:
                e = await engine.get(later)
                return e is not None and e.status is ExecutionStatus.COMPLETED

            await eventually(completed, timeout=30, what="a later execution completed")
            assert worker.poll() is None, log.read_text()
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
            started = time.monotonic()
            code = await asyncio.to_thread(worker.wait, 30)
        # Only the signal stopped it, gracefully (exit 0, within the grace period).
        assert code == 0, log.read_text()
        assert time.monotonic() - started < 10
        assert "stopped" in log.read_text()
        for execution_id, name in zip(quitters, ("SystemExit", "KeyboardInterrupt"), strict=True):
            execution = await engine.get(execution_id)
            assert execution is not None and execution.error is not None
            assert execution.error.code == "HANDLER_ERROR"
            assert name in execution.error.message
            assert len(execution.history) == 1  # ran once, recorded once

"""End to end: ``flowmonkey serve --no-worker`` + a separate ``flowmonkey worker`` on one
PostgreSQL schema. Start, wait, resume and an SSE stream, all across processes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from worker.support import drop_schema, new_schema, postgres_url

from .serving import serve, start

FLOW = """
id: approve
version: 1.0.0
initialStepId: prepare
steps:
  prepare:
    type: note
    transitions: {onSuccess: ask}
  ask:
    type: ask
    outputKey: answer
    transitions: {onSuccess: finish}
  finish:
    type: note
    transitions: {onSuccess: null}
"""

HANDLERS = """
import os
from flowmonkey import Result, handler

@handler("note")
async def note(ctx):
    return Result.success({"pid": os.getpid()})

@handler("ask")
async def ask(ctx):
    return Result.wait(reason="waiting for approval")
"""


@pytest.mark.postgres
@pytest.mark.slow
def test_serve_and_a_separate_worker_on_postgres(postgres_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "handlers.py").write_text(HANDLERS)
    schema = new_schema()
    url = postgres_url(postgres_dsn, schema)
    worker = None
    try:
        with serve(["--store", url, "--no-worker", "--flows", "flow.yaml"], tmp_path) as server:
            worker = start(
                ["worker", "--store", url, "--handlers", "handlers.py", "--flows", "flow.yaml",
                 "--poll-interval", "0.2"],
                tmp_path,
            )  # fmt: skip
            worker.wait_for("started")
            with server.client() as client:
                started = client.post("/api/v1/executions", json={"flow_id": "approve", "wait": 20})
                assert started.status_code == 201, started.text
                execution = started.json()
                assert execution["status"] == "waiting", execution
                history = client.get(f"/api/v1/executions/{execution['id']}/history").json()
                assert [r["step_id"] for r in history["items"]] == ["prepare", "ask"]
                frames: list[dict[str, str]] = []

                def read_stream() -> None:
                    with (
                        server.client() as streamer,
                        streamer.stream(
                            "GET",
                            f"/api/v1/executions/{execution['id']}/events",
                            headers={"Accept": "text/event-stream", "Last-Event-ID": "0"},
                        ) as response,
                    ):
                        block: dict[str, str] = {}
                        for line in response.iter_lines():
                            if not line:
                                if "id" in block:
                                    frames.append(block)
                                block = {}
                            elif ": " in line:
                                key, value = line.split(": ", 1)
                                block[key] = value

                reader = threading.Thread(target=read_stream)
                reader.start()
                resumed = client.post(
                    f"/api/v1/executions/{execution['id']}/resume", json={"data": {"ok": True}}
                )
                assert resumed.status_code == 200, resumed.text
                reader.join(timeout=30)
                assert not reader.is_alive(), "the SSE stream did not end"
                final = client.get(f"/api/v1/executions/{execution['id']}").json()
        assert final["status"] == "completed", final
        assert final["context"]["answer"] == {"ok": True}
        types = [f["event"] for f in frames]
        assert types[0] == "execution.created"
        assert "execution.resumed" in types
        assert types[-1] == "execution.completed"
        assert [int(f["id"]) for f in frames] == list(range(1, len(frames) + 1))
        assert json.loads(frames[-1]["data"])["execution_id"] == execution["id"]
    finally:
        if worker is not None and worker.proc.poll() is None:
            worker.proc.terminate()
            worker.proc.wait(timeout=30)
        drop_schema(postgres_dsn, schema)

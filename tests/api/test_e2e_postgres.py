"""End to end: ``flowmonkey serve --no-worker`` + a separate ``flowmonkey worker`` on one
PostgreSQL schema. Start, wait, resume and an SSE stream, all across processes; with
``?notify_events=true`` the stream is woken by LISTEN/NOTIFY (its poll is set to 2 min,
so a prompt end proves it)."""

from __future__ import annotations

import json
import threading
import time
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
    url = postgres_url(postgres_dsn, schema) + "&notify_events=true"
    worker = None
    try:
        api_args = ["--store", url, "--no-worker", "--flows", "flow.yaml", "--sse-poll", "120s"]
        with serve(api_args, tmp_path) as server:
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
                stored = client.get(f"/api/v1/executions/{execution['id']}/events").json()
                history_events = len(stored["items"])
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
                # The stream has sent what was stored and waits for more.
                deadline = time.monotonic() + 15
                while len(frames) < history_events:
                    assert time.monotonic() < deadline, frames
                    time.sleep(0.01)
                t0 = time.monotonic()
                resumed = client.post(
                    f"/api/v1/executions/{execution['id']}/resume", json={"data": {"ok": True}}
                )
                assert resumed.status_code == 200, resumed.text
                reader.join(timeout=30)
                assert not reader.is_alive(), "the SSE stream did not end"
                assert time.monotonic() - t0 < 30  # the 120 s poll never ran
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


def test_notify_events_is_a_store_option_not_a_libpq_parameter() -> None:
    from flowmonkey.stores import open_store

    store = open_store("postgresql://u@127.0.0.1/db?schema=s1&notify_events=true&sslmode=disable")
    assert store.notify_events is True  # type: ignore[attr-defined]
    assert store.events_channel == "flowmonkey_events_s1"  # type: ignore[attr-defined]
    assert "notify_events" not in store.dsn  # type: ignore[attr-defined]
    assert "sslmode=disable" in store.dsn  # type: ignore[attr-defined]

"""Flows (JSON and YAML uploads), the event log and its SSE stream, health and metrics,
rate limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowmonkey.api import ApiSettings

from .conftest import Api, open_api
from .test_basics import assert_problem

FLOW_YAML = """
id: uploaded
version: 1.0.0
initialStepId: a
steps:
  a:
    type: noop
    transitions: {onSuccess: null}
"""


async def test_upload_yaml_then_json_identical_then_conflict(api: Api) -> None:
    headers = {"Content-Type": "application/yaml"}
    first = await api["admin"].post("/api/v1/flows", content=FLOW_YAML, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json() == {"id": "uploaded", "version": "1.0.0"}
    definition = (await api["reader"].get("/api/v1/flows/uploaded")).json()
    assert definition["initialStepId"] == "a"
    same = await api["admin"].post("/api/v1/flows", json=definition)
    assert same.status_code == 200
    definition["name"] = "changed"
    assert_problem(await api["admin"].post("/api/v1/flows", json=definition), 409)
    listed = (await api["reader"].get("/api/v1/flows")).json()["items"]
    [uploaded] = [f for f in listed if f["id"] == "uploaded"]
    assert uploaded["versions"] == ["1.0.0"] and uploaded["latest"] == "1.0.0"
    graph = await api["reader"].get("/api/v1/flows/uploaded/graph")
    assert graph.headers["content-type"].startswith("text/plain")
    assert graph.text.startswith("flowchart")
    started = await api["acme"].post("/api/v1/executions", json={"flow_id": "uploaded", "wait": 5})
    assert started.json()["status"] == "completed"


async def test_upload_errors_list_every_issue(api: Api) -> None:
    bad = {"id": "bad", "version": "x", "initialStepId": "missing", "steps": {"a": {}}}
    body = assert_problem(await api["admin"].post("/api/v1/flows", json=bad), 422, "INVALID_FLOW")
    assert len(body["errors"]) >= 2
    yaml_error = await api["admin"].post(
        "/api/v1/flows", content="id: [unclosed", headers={"Content-Type": "application/yaml"}
    )
    assert_problem(yaml_error, 400, "MALFORMED_YAML")
    # A string that names a server file is YAML text, never a path to read.
    path_like = await api["admin"].post(
        "/api/v1/flows", content='"/etc/passwd.yaml"', headers={"Content-Type": "application/json"}
    )
    assert_problem(path_like, 422, "INVALID_FLOW")
    assert_problem(await api["reader"].get("/api/v1/flows/ghost"), 404, "FLOW_NOT_FOUND")


async def test_events_json_and_after(api: Api) -> None:
    execution = (
        await api["acme"].post("/api/v1/executions", json={"flow_id": "three", "wait": 5})
    ).json()
    url = f"/api/v1/executions/{execution['id']}/events"
    events = (await api["acme"].get(url)).json()["items"]
    assert events[0]["sequence"] == 1
    assert events[-1]["type"] == "execution.completed"
    later = (await api["acme"].get(url, params={"after": 3})).json()["items"]
    assert [e["sequence"] for e in later] == [e["sequence"] for e in events[3:]]


def _parse_sse(text: str) -> list[dict[str, str]]:
    frames = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "id" in fields:
            frames.append(fields)
    return frames


async def test_sse_streams_live_events_and_honours_last_event_id(api: Api) -> None:
    execution = (
        await api["acme"].post("/api/v1/executions", json={"flow_id": "approval", "wait": 5})
    ).json()
    url = f"/api/v1/executions/{execution['id']}/events"
    stream_headers = {"Accept": "text/event-stream", "Last-Event-ID": "2"}

    async def read_stream() -> str:
        async with api["acme"].stream("GET", url, headers=stream_headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            return (await response.aread()).decode()

    reader = asyncio.create_task(read_stream())
    await asyncio.sleep(0)  # the stream is open and idle: the execution waits
    resumed = await api["acme"].post(
        f"/api/v1/executions/{execution['id']}/resume", json={"data": 1}
    )
    assert resumed.status_code == 200
    text = await asyncio.wait_for(reader, 10)
    frames = _parse_sse(text)
    assert int(frames[0]["id"]) == 3
    assert [int(f["id"]) for f in frames] == list(range(3, 3 + len(frames)))
    assert frames[-1]["event"] == "execution.completed"
    assert "execution.resumed" in [f["event"] for f in frames]
    # A finished execution streams what is left and closes.
    again = await api["acme"].get(url, headers={"Accept": "text/event-stream"})
    assert _parse_sse(again.text)[-1]["event"] == "execution.completed"
    assert_problem(
        await api["acme"].get(
            url, headers={"Accept": "text/event-stream", "Last-Event-ID": "x\r\ny"}
        ),
        400,
    )


async def test_sse_sees_events_written_by_another_engine(api: Api, tmp_path: Path) -> None:
    """Another process's writes (here: a second engine on the same file) reach the
    stream through the store, not through this process's event bus."""
    from flowmonkey.stores.sqlite import SqliteStore
    from flowmonkey.testing import make_engine

    from .conftest import FLOWS, noop, wait

    execution = (
        await api["acme"].post("/api/v1/executions", json={"flow_id": "approval", "wait": 5})
    ).json()
    url = f"/api/v1/executions/{execution['id']}/events"

    async def read_stream() -> str:
        headers = {"Accept": "text/event-stream"}
        async with api["acme"].stream("GET", url, headers=headers) as response:
            return (await response.aread()).decode()

    reader = asyncio.create_task(read_stream())
    other = make_engine([noop, wait], FLOWS, store=SqliteStore(tmp_path / "api.db"))
    async with other:
        await other.resume(execution["id"], {"from": "elsewhere"})
    frames = _parse_sse(await asyncio.wait_for(reader, 10))
    assert frames[-1]["event"] == "execution.completed"


async def test_health_ready_and_metrics_need_no_key(api: Api) -> None:
    await api["acme"].post("/api/v1/executions", json={"flow_id": "three", "wait": 5})
    anonymous = api["anonymous"]
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    assert (await anonymous.get("/readyz")).json() == {"status": "ready"}
    metrics = (await anonymous.get("/metrics")).text
    assert 'flowmonkey_executions{status="completed"} 1.0' in metrics
    assert 'flowmonkey_steps_total{outcome="success"} 3.0' in metrics
    assert "flowmonkey_step_duration_seconds_count" in metrics
    assert 'route="/api/v1/executions"' in metrics
    assert "process_" in metrics or "python_" in metrics
    assert "flowmonkey_purged_executions 0.0" in metrics  # the retention metric


async def test_readyz_is_503_when_the_store_is_gone(api: Api) -> None:
    await api.engine.store.close()
    response = await api["anonymous"].get("/readyz")
    assert_problem(response, 503)
    await api.engine.store.initialize()


@pytest.mark.parametrize("burst", [3])
async def test_rate_limit_429_with_retry_after(tmp_path: Path, burst: int) -> None:
    settings = ApiSettings(rate_limit=0.01, rate_burst=burst, public_rate_limit=0.01,
                           public_rate_burst=2)  # fmt: skip
    async for api in open_api(tmp_path, settings=settings):
        codes = [(await api["acme"].get("/api/v1/executions")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await api["acme"].get("/api/v1/executions")
        assert int(limited.headers["retry-after"]) >= 1
        assert_problem(limited, 429, "RATE_LIMITED")
        # Per key: another key still has its own bucket.
        assert (await api["globex"].get("/api/v1/executions")).status_code == 200
        anonymous = [
            (await api["anonymous"].post("/api/v1/resume/fmr_x")).status_code for _ in range(3)
        ]
        assert anonymous == [404, 404, 429]

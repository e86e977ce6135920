"""Starting, reading, listing, and the problem+json answers for bad input."""

from __future__ import annotations

import pytest

from .conftest import Api


async def test_start_and_wait_completes_and_reads_back(api: Api) -> None:
    response = await api["acme"].post(
        "/api/v1/executions", json={"flow_id": "three", "input": {"n": 1}, "wait": 5}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["tenant_id"] == "acme"
    assert response.headers["location"] == f"/api/v1/executions/{body['id']}"
    assert response.headers["x-request-id"]
    got = await api["acme"].get(f"/api/v1/executions/{body['id']}")
    assert got.status_code == 200
    assert got.json()["context"]["n"] == 1
    history = await api["acme"].get(f"/api/v1/executions/{body['id']}/history")
    assert [r["step_id"] for r in history.json()["items"]] == ["a", "b", "c"]


async def test_wait_zero_answers_pending(api: Api) -> None:
    response = await api["acme"].post("/api/v1/executions", json={"flow_id": "three"})
    assert response.status_code == 201
    assert response.json()["status"] == "pending"


async def test_idempotency_key_replays_the_first_execution(api: Api) -> None:
    headers = {"Idempotency-Key": "order-1"}
    first = await api["acme"].post(
        "/api/v1/executions", json={"flow_id": "three", "wait": 5}, headers=headers
    )
    again = await api["acme"].post("/api/v1/executions", json={"flow_id": "three"}, headers=headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    # Tenant scoped: the same key in another tenant is another execution.
    other = await api["globex"].post(
        "/api/v1/executions", json={"flow_id": "three"}, headers=headers
    )
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]


async def test_list_is_paginated_newest_first_and_tenant_filtered(api: Api) -> None:
    ids = []
    for i in range(5):
        api.clock.advance(1)
        r = await api["acme"].post(
            "/api/v1/executions", json={"flow_id": "three", "input": {"i": i}}
        )
        ids.append(r.json()["id"])
    await api["globex"].post("/api/v1/executions", json={"flow_id": "three"})
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api["acme"].get("/api/v1/executions", params=params)).json()
        assert all("context" not in item for item in page["items"])
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    everything = (await api["admin"].get("/api/v1/executions")).json()["items"]
    assert len(everything) == 6
    only_globex = await api["admin"].get("/api/v1/executions", params={"tenant_id": "globex"})
    assert [e["tenant_id"] for e in only_globex.json()["items"]] == ["globex"]


def assert_problem(response: object, status: int, code: str | None = None) -> dict:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert "Traceback" not in response.text
    if code is not None:
        assert body["code"] == code, body
    return body


async def test_unknown_fields_and_wrong_types_are_all_listed(api: Api) -> None:
    response = await api["acme"].post(
        "/api/v1/executions",
        json={"flow_id": 5, "wait": 99, "colour": "red", "sneaky": 1},
    )
    body = assert_problem(response, 422, "VALIDATION_FAILED")
    messages = {(e["path"], e["message"]) for e in body["errors"]}
    assert ("body.colour", 'unknown field "colour"') in messages
    assert ("body.sneaky", 'unknown field "sneaky"') in messages
    paths = {e["path"] for e in body["errors"]}
    assert {"body.flow_id", "body.wait"} <= paths
    assert (await api["admin"].get("/api/v1/executions")).json()["items"] == []


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b"flow_id: three", "text/plain", 415),
        (b"flow_id: three", "application/yaml", 415),
    ],
)
async def test_malformed_bodies(api: Api, content: bytes, content_type: str, status: int) -> None:
    response = await api["acme"].post(
        "/api/v1/executions", content=content, headers={"Content-Type": content_type}
    )
    assert_problem(response, status)
    assert (await api["admin"].get("/api/v1/executions")).json()["items"] == []


async def test_huge_body_is_413_and_nothing_is_stored(api: Api) -> None:
    big = {"flow_id": "three", "input": {"blob": "x" * (1 << 20)}}
    assert_problem(await api["acme"].post("/api/v1/executions", json=big), 413, "BODY_TOO_LARGE")

    async def chunks():  # no Content-Length: counted while streaming
        yield b'{"flow_id": "three", "input": {"blob": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}'

    streamed = await api["acme"].post(
        "/api/v1/executions", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(streamed, 413, "BODY_TOO_LARGE")
    assert (await api["admin"].get("/api/v1/executions")).json()["items"] == []


async def test_unknown_ids_bad_cursors_and_unknown_flows(api: Api) -> None:
    assert_problem(await api["acme"].get("/api/v1/executions/nope"), 404, "EXECUTION_NOT_FOUND")
    assert_problem(
        await api["acme"].get("/api/v1/executions", params={"cursor": "garbage!"}),
        400,
        "BAD_CURSOR",
    )
    assert_problem(
        await api["acme"].get("/api/v1/executions", params={"limit": 0}), 422, "VALIDATION_FAILED"
    )
    assert_problem(
        await api["acme"].post("/api/v1/executions", json={"flow_id": "ghost"}),
        404,
        "FLOW_NOT_FOUND",
    )
    assert_problem(await api["acme"].get("/api/v1/tasks/nope"), 404, "TASK_NOT_FOUND")
    assert_problem(await api["acme"].delete("/api/v1/executions"), 405)
    assert_problem(await api["acme"].get("/api/v1/nothing-here"), 404)


async def test_header_injection_in_ids_and_request_ids(api: Api) -> None:
    evil = "x%0d%0aSet-Cookie:%20a=b"
    response = await api["acme"].get(f"/api/v1/executions/{evil}")
    assert response.status_code in (404, 422)
    assert "set-cookie" not in response.headers
    injected = await api["acme"].get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert injected.headers["x-request-id"] != "bad id with spaces"
    kept = await api["acme"].get("/healthz", headers={"X-Request-Id": "req-123"})
    assert kept.headers["x-request-id"] == "req-123"
    bad_key = await api["acme"].post(
        "/api/v1/executions",
        json={"flow_id": "three"},
        headers={"Idempotency-Key": "a\tb"},
    )
    assert_problem(bad_key, 422)

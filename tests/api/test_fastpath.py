"""The lean twins of ``POST /api/v1/executions`` and ``POST /hooks/{id}`` answer exactly
as the FastAPI routes they stand for: each request is sent twice, through the twin and
with the twins switched off, and the answers compared (ids and times aside)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from flowmonkey.api.fastpath import FastRoutes

from .conftest import Api
from .test_hooks import make_trigger, signed

_VOLATILE = {"id", "created_at", "updated_at", "started_at", "execution_id", "history"}


def _shape(answer: httpx.Response) -> tuple[Any, ...]:
    try:
        body: Any = answer.json()
    except ValueError:
        body = answer.text
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in _VOLATILE}
    headers = {
        k: v
        for k, v in answer.headers.items()
        if k in ("content-type", "www-authenticate", "idempotent-replayed", "retry-after")
    }
    return answer.status_code, headers, body, "location" in answer.headers


async def _both(
    api: Api, monkeypatch: pytest.MonkeyPatch, who: str, path: str, **request: Any
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    served: list[str] = []
    original = FastRoutes.serve

    async def counted(self: FastRoutes, *args: Any) -> None:
        served.append(path)
        await original(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(FastRoutes, "serve", counted)
        lean = await api[who].post(path, **request)
    assert served == [path]  # the twin did answer (or handed on) the first request
    with monkeypatch.context() as patch:
        patch.setattr(FastRoutes, "match", lambda self, scope: None)
        full = await api[who].post(path, **request)
    return _shape(lean), _shape(full)


START_BODIES: list[bytes] = [
    json.dumps(b).encode()
    for b in (
        {"flow_id": "three"},
        {"flow_id": "three", "input": {"a": [1, 2.5, None, "x"]}, "metadata": {"m": 1}},
        {"flow_id": "three", "wait": "0"},
        {"flow_id": "three", "wait": True},
        {"flow_id": "three", "wait": -1},
        {"flow_id": "three", "wait": 61},
        {"flow_id": 123},
        {"flow_id": ""},
        {"flow_id": "x" * 201},
        {"flow_id": "three", "surprise": 1},
        {"flow_id": "three", "input": []},
        {"flow_id": "three", "metadata": "x"},
        {"flow_id": "nope"},
        {"flow_id": "three", "version": "9.9.9"},
        {"flow_id": "three", "tenant_id": "acme"},
        {"flow_id": "three", "tenant_id": "globex"},
        {"flow_id": "three", "correlation_id": "c1"},
        {},
        [],
        "three",
        None,
    )
] + [
    b"",
    b"{bad",
    b'{"flow_id": "three", "input": {"x": NaN}}',
    b'{"flow_id": "three"} trailing',
    '{"flow_id": "three"}'.encode("utf-16"),
    b'{"flow_id": "three", "flow_id": "nope"}',
    b'{"flow_id": "th\\u00e9"}',
    b'{"flow_id": "\\ud800"}',
]


@pytest.mark.parametrize("body", START_BODIES, ids=range(len(START_BODIES)))
@pytest.mark.parametrize("who", ["acme", "reader", "anonymous"])
async def test_start_answers_as_the_route_does(
    api: Api, monkeypatch: pytest.MonkeyPatch, who: str, body: bytes
) -> None:
    lean, full = await _both(
        api,
        monkeypatch,
        who,
        "/api/v1/executions",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert lean == full


@pytest.mark.parametrize(
    "headers",
    [
        {"Idempotency-Key": "k-1"},
        {"Idempotency-Key": "x" * 201},
        {"Idempotency-Key": ""},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"traceparent": "garbage"},
        {"content-type": "application/problem+json"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer fmk_unknown"},
    ],
)
async def test_start_headers_are_read_as_the_route_reads_them(
    api: Api, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> None:
    sent = {"content-type": "application/json", **headers}
    body = json.dumps({"flow_id": "three"}).encode()
    lean, full = await _both(api, monkeypatch, "acme", "/api/v1/executions", content=body,
                             headers=sent)  # fmt: skip
    if headers.get("Idempotency-Key") == "k-1":  # the twin created it, the route replays
        assert lean[0] == 201 and "idempotent-replayed" not in lean[1]
        assert full[0] == 200 and full[1]["idempotent-replayed"] == "true"
        assert lean[2] == full[2]
        return
    assert lean == full


async def test_the_twin_answers_under_a_mount(api: Api) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/svc", app=api.app)])
    transport = httpx.ASGITransport(app=outer)
    headers = {"Authorization": f"Bearer {api.keys['acme']}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        made = await client.post("/svc/api/v1/executions", json={"flow_id": "three"},
                                 headers=headers)  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["tenant_id"] == "acme"


HOOK_CASES: list[dict[str, Any]] = [
    signed({"order_id": "o1", "amount": 5}, **{"Idempotency-Key": "h1"}),
    signed({"order_id": "o2", "amount": -1}),
    signed({"order_id": "o3", "amount": 1}, secret="whsec_wrong_wrong_wrong"),
    {
        "content": b'{"order_id": "o4", "amount": 1}',
        "headers": {"content-type": "application/json"},
    },
    {"content": b"{bad", "headers": signed({})["headers"]},
    signed({"order_id": "o5", "amount": 1}, **{"content-type": "text/plain"}),
]


@pytest.mark.parametrize("case", HOOK_CASES, ids=range(len(HOOK_CASES)))
async def test_hooks_answer_as_the_route_does(
    api: Api, monkeypatch: pytest.MonkeyPatch, case: dict[str, Any]
) -> None:
    await make_trigger(api)
    lean, full = await _both(api, monkeypatch, "anonymous", "/hooks/orders", **case)
    if lean[0] == 202:  # a repeat of the same idempotency key replays the first one
        assert full[0] == 200 and full[2] == {"created": False}
        return
    assert lean == full
    missing = await _both(api, monkeypatch, "anonymous", "/hooks/nope", **case)
    assert missing[0] == missing[1]

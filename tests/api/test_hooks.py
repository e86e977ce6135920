"""Webhook triggers: management routes and the public, signed ``POST /hooks/{id}``."""

from __future__ import annotations

import hashlib
import hmac
import json

from flowmonkey.api.webhooks import sign

from .conftest import Api

SECRET = "whsec_0123456789abcdef"
ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "amount": {"type": "number", "minimum": 0},
        "items": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["order_id", "amount"],
}


async def make_trigger(api: Api, **fields: object) -> dict:
    body = {
        "id": "orders",
        "flow_id": "three",
        "input_schema": ORDER_SCHEMA,
        "input_map": '{order: body.order_id, amount: body.amount, source: headers."x-source"}',
        "secret": SECRET,
        "idempotency": "header:Idempotency-Key",
        **fields,
    }
    answer = await api["acme"].post("/api/v1/triggers", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def signed(body: dict, *, secret: str = SECRET, ts: str | None = None, **headers: str) -> dict:
    raw = json.dumps(body).encode()
    out = {"content-type": "application/json", "X-Flowmonkey-Signature": sign(secret, raw, ts)}
    if ts is not None:
        out["X-Flowmonkey-Timestamp"] = ts
    out.update(headers)
    return {"content": raw, "headers": out}


async def test_management_hides_the_secret_and_respects_tenants(api: Api) -> None:
    made = await make_trigger(api)
    assert made["has_secret"] is True and "secret" not in made
    assert made["url"] == "/hooks/orders" and made["tenant_id"] == "acme"
    listed = (await api["acme"].get("/api/v1/triggers")).json()["items"]
    assert [t["id"] for t in listed] == ["orders"] and "secret" not in listed[0]
    assert (await api["globex"].get("/api/v1/triggers/orders")).status_code == 404
    patched = await api["acme"].patch("/api/v1/triggers/orders", json={"enabled": False})
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert (await api["anonymous"].post("/hooks/orders", json={})).status_code == 404
    assert (await api["acme"].delete("/api/v1/triggers/orders")).status_code == 204
    assert (await api["acme"].get("/api/v1/triggers/orders")).status_code == 404


async def test_bad_definitions_list_every_problem(api: Api) -> None:
    answer = await api["acme"].post(
        "/api/v1/triggers",
        json={
            "id": "bad id!",
            "flow_id": "ghost",
            "input_schema": {"type": "nonsense"},
            "input_map": "body.[",
            "secret": "short",
            "idempotency": "cookie:x",
            "colour": 1,
        },
    )
    assert answer.status_code == 422
    paths = sorted(e["path"] for e in answer.json()["errors"])
    assert paths == [
        "colour",
        "flow_id",
        "id",
        "idempotency",
        "input_map",
        "input_schema",
        "secret",
    ]
    assert (await api["acme"].get("/api/v1/triggers")).json()["items"] == []


async def test_a_signed_hook_starts_the_flow_once_per_idempotency_key(api: Api) -> None:
    await make_trigger(api)
    payload = {"order_id": "o-1", "amount": 12.5, "items": ["a"]}
    first = await api["anonymous"].post(
        "/hooks/orders?x=1", **signed(payload, **{"Idempotency-Key": "k1", "X-Source": "shop"})
    )
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["created"] is True
    execution = await api.engine.get(body["execution_id"])
    assert execution is not None and execution.tenant_id == "acme"
    assert execution.context == {"order": "o-1", "amount": 12.5, "source": "shop"}
    again = await api["anonymous"].post(
        "/hooks/orders", **signed(payload, **{"Idempotency-Key": "k1"})
    )
    assert again.status_code == 200
    assert again.json() == {"execution_id": body["execution_id"], "created": False}
    other = await api["anonymous"].post(
        "/hooks/orders", **signed(payload, **{"Idempotency-Key": "k2"})
    )
    assert other.status_code == 202 and other.json()["execution_id"] != body["execution_id"]


async def test_wrong_missing_or_replayed_signatures_are_401_and_start_nothing(api: Api) -> None:
    await make_trigger(api)
    payload = {"order_id": "o-1", "amount": 1}
    now = int(api.clock.now().timestamp())
    cases = [
        signed(payload, secret="whsec_someone_else_entirely"),
        {"content": json.dumps(payload).encode(), "headers": {"content-type": "application/json"}},
        signed(payload, ts=str(now - 301)),  # replayed: older than 5 minutes
        signed(payload, ts="yesterday"),
    ]
    tampered = signed(payload)
    tampered["content"] = tampered["content"].replace(b"1", b"9")
    cases.append(tampered)
    for case in cases:
        answer = await api["anonymous"].post("/hooks/orders", **case)
        assert answer.status_code == 401, answer.text
        assert answer.json()["code"] == "BAD_SIGNATURE"
    fresh = await api["anonymous"].post("/hooks/orders", **signed(payload, ts=str(now - 10)))
    assert fresh.status_code == 202
    page = await api.engine.list(limit=10)
    assert len(page.items) == 1


async def test_github_style_sender_is_accepted(api: Api) -> None:
    await make_trigger(
        api,
        id="gh",
        signature_header="X-Hub-Signature-256",
        input_map=None,
        input_schema=None,
        idempotency="header:X-GitHub-Delivery",
    )
    raw = b'{"action": "opened", "number": 7}'
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Delivery": "d-1",
    }
    answer = await api["anonymous"].post("/hooks/gh", content=raw, headers=headers)
    assert answer.status_code == 202, answer.text


async def test_bad_bodies_are_named_and_start_nothing(api: Api) -> None:
    await make_trigger(api, secret=None)
    bad_schema = await api["anonymous"].post("/hooks/orders", json={"amount": -1, "items": [3]})
    assert bad_schema.status_code == 422
    problems = bad_schema.json()["errors"]
    assert [p["path"] for p in problems] == ["body", "body.amount", "body.items[0]"]
    assert "order_id" in problems[0]["message"]
    not_json = await api["anonymous"].post(
        "/hooks/orders", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.json()["code"] == "MALFORMED_JSON"
    form = await api["anonymous"].post(
        "/hooks/orders", content=b"a=1", headers={"content-type": "text/plain"}
    )
    assert form.status_code == 415
    huge = await api["anonymous"].post(
        "/hooks/orders",
        content=b"{" + b" " * (2 << 20) + b"}",
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert (await api["anonymous"].post("/hooks/ghost", json={})).status_code == 404
    assert (await api.engine.list(limit=10)).items == []


async def test_body_expression_idempotency(api: Api) -> None:
    await make_trigger(api, secret=None, idempotency="body:order_id")
    first = await api["anonymous"].post("/hooks/orders", json={"order_id": "o-9", "amount": 1})
    second = await api["anonymous"].post("/hooks/orders", json={"order_id": "o-9", "amount": 2})
    assert first.status_code == 202 and second.status_code == 200
    assert first.json()["execution_id"] == second.json()["execution_id"]

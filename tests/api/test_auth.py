"""API keys on the wire: 401 for missing/unknown/revoked/expired, 403 for scopes,
``last_used_at``; the generated cross-tenant test lives in test_tenancy.py."""

from __future__ import annotations

from datetime import timedelta

from flowmonkey.model.keys import hash_key, new_api_key

from .conftest import Api
from .test_basics import assert_problem


async def test_missing_malformed_and_unknown_keys_are_401_with_www_authenticate(
    api: Api,
) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer fmk_nope"}):
        response = await api["anonymous"].get("/api/v1/executions", headers=headers)
        assert_problem(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_revocation_takes_effect_on_the_next_request(api: Api) -> None:
    assert (await api["acme"].get("/api/v1/executions")).status_code == 200
    record = await api.engine.store.find_api_key(hash_key(api.keys["acme"]))
    assert record is not None
    await api.engine.store.revoke_api_key(record.id, now=api.clock.now())
    response = await api["acme"].get("/api/v1/executions")
    body = assert_problem(response, 401)
    assert "revoked" in body["detail"]


async def test_an_expired_key_is_refused(api: Api) -> None:
    secret, record = new_api_key(
        name="short", tenant="acme", scopes=("read",), now=api.clock.now(),
        expires_in=timedelta(seconds=3),
    )  # fmt: skip
    await api.engine.store.create_api_key(record)
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await api["anonymous"].get("/api/v1/executions", headers=headers)).status_code == 200
    api.clock.advance(3)
    response = await api["anonymous"].get("/api/v1/executions", headers=headers)
    assert "expired" in assert_problem(response, 401)["detail"]


async def test_scopes(api: Api) -> None:
    assert (await api["reader"].get("/api/v1/executions")).status_code == 200
    denied = await api["reader"].post("/api/v1/executions", json={"flow_id": "three"})
    assert_problem(denied, 403, "FORBIDDEN")
    flow = {"id": "mine", "version": "1.0.0", "initialStepId": "a",
            "steps": {"a": {"type": "noop", "transitions": {"onSuccess": None}}}}  # fmt: skip
    assert_problem(await api["acme"].post("/api/v1/flows", json=flow), 403)
    assert (await api["admin"].post("/api/v1/flows", json=flow)).status_code == 201


async def test_last_used_at_is_recorded(api: Api) -> None:
    await api["globex"].get("/api/v1/executions")
    await api.app.state.flowmonkey.keys.drain()
    keys = {k.name: k for k in await api.engine.store.list_api_keys()}
    assert keys["globex"].last_used_at == api.clock.now()
    assert keys["reader"].last_used_at is None


async def test_tenant_rules_on_create(api: Api) -> None:
    forced = await api["acme"].post("/api/v1/executions", json={"flow_id": "three"})
    assert forced.json()["tenant_id"] == "acme"
    same = await api["acme"].post(
        "/api/v1/executions", json={"flow_id": "three", "tenant_id": "acme"}
    )
    assert same.status_code == 201
    other = await api["acme"].post(
        "/api/v1/executions", json={"flow_id": "three", "tenant_id": "globex"}
    )
    assert_problem(other, 403)
    tenantless = await api["star"].post("/api/v1/executions", json={"flow_id": "three"})
    assert tenantless.json()["tenant_id"] is None
    assert_problem(
        await api["star"].post(
            "/api/v1/executions", json={"flow_id": "three", "tenant_id": "acme"}
        ),
        403,
    )
    chosen = await api["admin"].post(
        "/api/v1/executions", json={"flow_id": "three", "tenant_id": "globex"}
    )
    assert chosen.json()["tenant_id"] == "globex"
    assert_problem(await api["acme"].get("/api/v1/executions", params={"tenant_id": "globex"}), 403)


async def test_dev_mode_needs_no_key(tmp_path) -> None:
    from .conftest import open_api

    async for opened in open_api(tmp_path, auth=False):
        response = await opened["anonymous"].post(
            "/api/v1/executions", json={"flow_id": "three", "wait": 5}
        )
        assert response.status_code == 201
        assert response.json()["status"] == "completed"

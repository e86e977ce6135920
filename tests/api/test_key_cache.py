"""The SQLite store remembers verified keys (no lookup per request), and a revocation
still takes effect on the very next request: done through the same store, through
another connection, or by another process (``flowmonkey keys revoke``)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from flowmonkey.model.keys import hash_key, new_api_key
from flowmonkey.stores.sqlite import SqliteStore

from .conftest import Api
from .test_basics import assert_problem


async def _key_id(api: Api, who: str) -> str:
    record = await api.engine.store.find_api_key(hash_key(api.keys[who]))
    assert record is not None
    return record.id


async def test_a_known_key_is_answered_without_reading_the_table(api: Api) -> None:
    store = api.engine.store
    assert isinstance(store, SqliteStore)
    assert (await api["acme"].get("/api/v1/executions")).status_code == 200
    assert store._conn is not None
    # With the row gone behind the cache's back (no write through this store, and no
    # other connection), the key is still known: the second request did not read it.
    store._conn.execute("DELETE FROM api_keys WHERE key_hash = ?", (hash_key(api.keys["acme"]),))
    assert (await api["acme"].get("/api/v1/executions")).status_code == 200


async def test_a_revocation_by_another_connection_is_seen_at_once(api: Api, tmp_path: Path) -> None:
    assert (await api["acme"].get("/api/v1/executions")).status_code == 200
    other = SqliteStore(tmp_path / "api.db")
    await other.initialize()
    try:
        await other.revoke_api_key(await _key_id(api, "acme"), now=api.clock.now())
    finally:
        await other.close()
    body = assert_problem(await api["acme"].get("/api/v1/executions"), 401)
    assert "revoked" in body["detail"]
    assert (await api["globex"].get("/api/v1/executions")).status_code == 200


async def test_a_revocation_by_another_process_is_seen_at_once(api: Api, tmp_path: Path) -> None:
    assert (await api["acme"].get("/api/v1/executions")).status_code == 200
    key_id = await _key_id(api, "acme")
    store = f"sqlite:///{tmp_path / 'api.db'}"
    cli = str(Path(sys.executable).parent / "flowmonkey")
    done = await asyncio.create_subprocess_exec(
        cli, "keys", "revoke", key_id, "--store", store, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(done.communicate(), timeout=120)
    assert done.returncode == 0, stderr.decode()
    body = assert_problem(
        await api["acme"].post("/api/v1/executions", json={"flow_id": "three"}), 401
    )
    assert "revoked" in body["detail"]


async def test_a_cached_key_still_expires(api: Api) -> None:
    secret, record = new_api_key(
        name="short", tenant="acme", scopes=("write",), now=api.clock.now(),
        expires_in=timedelta(seconds=3),
    )  # fmt: skip
    await api.engine.store.create_api_key(record)
    headers = {"Authorization": f"Bearer {secret}"}
    start = {"flow_id": "three"}
    ok = await api["anonymous"].post("/api/v1/executions", json=start, headers=headers)
    assert ok.status_code == 201
    api.clock.advance(3)
    late = await api["anonymous"].post("/api/v1/executions", json=start, headers=headers)
    assert "expired" in assert_problem(late, 401)["detail"]

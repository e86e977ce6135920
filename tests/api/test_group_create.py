"""Group create: concurrent creates share one SQLite transaction (``create_many``), each
keeps its own outcome, and each caller is answered only once its create is committed."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from flowmonkey.stores.sqlite import SqliteStore

from .conftest import Api
from .test_hooks import make_trigger, signed


def _spy(api: Api) -> list[int]:
    """Sizes of the groups the engine's ``CreateBatcher`` sends from now on."""
    sizes: list[int] = []
    creator = api.engine.runtime.creator
    original = creator._create_many
    assert original is not None

    async def create_many(items: Any) -> Any:
        sizes.append(len(items))
        return await original(items)

    creator._create_many = create_many
    return sizes


async def test_create_many_keeps_each_outcome(api: Api, tmp_path: Path) -> None:
    engine = api.engine
    store = engine.store
    assert isinstance(store, SqliteStore)
    first = (await engine.create("three", {"n": 1})).execution
    again = replace(first, context={"n": 2})  # the same id: that item alone fails
    fresh = replace(first, id=first.id + "x", context={"n": 3})
    keyed = replace(first, id=first.id + "k", idempotency_key="k1")
    keyed.idempotency_expires_at = api.clock.now().replace(year=2100)
    twin = replace(keyed, id=first.id + "t")
    outcomes = await store.create_many([(again, [], None), (fresh, [], None),
                                        (keyed, [], None), (twin, [], None)])  # fmt: skip
    assert isinstance(outcomes[0], Exception) and "already exists" in str(outcomes[0])
    assert outcomes[1] == (fresh, True)
    assert outcomes[2] == (keyed, True)
    replayed = outcomes[3]
    assert not isinstance(replayed, Exception)
    assert replayed[0].id == keyed.id and replayed[1] is False  # same key, same group
    other = SqliteStore(tmp_path / "api.db")  # what another process sees: committed
    await other.initialize()
    try:
        assert (await other.get(fresh.id)) is not None
        assert (await other.get(twin.id)) is None
        stored = await other.get(first.id)
        assert stored is not None and stored.context == {"n": 1}
    finally:
        await other.close()


async def test_concurrent_hooks_share_one_transaction(api: Api) -> None:
    await make_trigger(api, idempotency="body:order_id")
    store = api.engine.store
    assert isinstance(store, SqliteStore)
    creator = api.engine.runtime.creator
    creator.PROBE_EVERY = 1  # probe at once (the default waits for the 8th create)
    sizes = _spy(api)
    bodies = [{"order_id": f"o{n}", "amount": 1} for n in range(6)] + [
        {"order_id": "o0", "amount": 1}
    ]
    answers = await asyncio.gather(
        *(api["anonymous"].post("/hooks/orders", **signed(b)) for b in bodies)
    )
    assert [a.status_code for a in answers] == [202] * 6 + [200]
    ids = [a.json()["execution_id"] for a in answers]
    assert len(set(ids[:6])) == 6 and ids[6] == ids[0]
    assert sizes == [7]  # one transaction for all of them
    for execution_id in ids:
        assert await store.get(execution_id) is not None


async def test_a_lone_create_goes_straight_to_the_store(api: Api) -> None:
    store = api.engine.store
    assert isinstance(store, SqliteStore)
    creator = api.engine.runtime.creator
    creator.PROBE_EVERY = 1
    sizes = _spy(api)
    for _ in range(creator.ALONE_LIMIT + 3):
        answer = await api["acme"].post("/api/v1/executions", json={"flow_id": "three"})
        assert answer.status_code == 201
    # Probes that found no company are sent alone (create, not create_many) ...
    assert sizes == []
    # ... and after a group of several, lone creates still go alone.
    answers = await asyncio.gather(
        *(api["acme"].post("/api/v1/executions", json={"flow_id": "three"}) for _ in range(3))
    )
    assert [a.status_code for a in answers] == [201] * 3
    assert sizes == [3]


async def test_grouped_starts_that_wait_run_to_their_end(api: Api) -> None:
    creator = api.engine.runtime.creator
    creator.PROBE_EVERY = 1
    sizes = _spy(api)
    body = {"flow_id": "three", "wait": 5}
    answers = await asyncio.gather(
        *(api["acme"].post("/api/v1/executions", json=body) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [201] * 4
    assert [a.json()["status"] for a in answers] == ["completed"] * 4
    assert sizes == [4]  # stored already leased to this process, all in one transaction

"""``PostgresStore.create_bulk``: a bulk load stores what ``create`` stores, all or nothing."""

from __future__ import annotations

import pytest

from contract.factories import at, event, make_execution
from flowmonkey import errors
from flowmonkey.model.execution import ExecutionStatus
from postgres.conftest import StoreMaker

pytestmark = pytest.mark.postgres


async def test_create_bulk_stores_what_create_stores(make_store: StoreMaker) -> None:
    store = await make_store()
    made = [
        make_execution(
            status=ExecutionStatus.WAITING,
            wake_at=at(3600 + n),
            context={"n": n},
            tenant_id="t1",
            correlation_id=f"c{n}",
        )
        for n in range(3)
    ]
    one = make_execution(status=ExecutionStatus.WAITING, wake_at=at(3600), context={"n": 9})
    await store.create(one, [event(one.id, 1)])
    assert await store.create_bulk([(e, [event(e.id, 1), event(e.id, 2)]) for e in made]) == 3
    for execution in made:
        loaded = await store.get(execution.id)
        assert loaded is not None
        assert (loaded.status, loaded.context, loaded.wake_at, loaded.tenant_id) == (
            ExecutionStatus.WAITING,
            execution.context,
            execution.wake_at,
            "t1",
        )
        assert [e.sequence for e in await store.events(execution.id)] == [1, 2]
    due = await store.due(now=at(3601), limit=10)  # one and made[0] tie: any order
    assert sorted(due) == sorted([one.id, made[0].id, made[1].id])


async def test_create_bulk_is_all_or_nothing(make_store: StoreMaker) -> None:
    store = await make_store()
    taken = make_execution()
    await store.create(taken)
    fresh = make_execution()
    with pytest.raises(errors.StoreError):
        await store.create_bulk([(fresh, []), (make_execution(id=taken.id), [])])
    assert await store.get(fresh.id) is None
    with pytest.raises(ValueError, match="idempotency"):
        await store.create_bulk([(make_execution(idempotency_key="k"), [])])

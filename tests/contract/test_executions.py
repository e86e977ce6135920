"""Contract: create, get, context round-trips and idempotent create."""

from __future__ import annotations

import asyncio
from dataclasses import fields, replace
from datetime import timedelta
from typing import Any

import pytest

from contract.factories import T0, at, event, full_execution, make_execution
from flowmonkey import errors
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.stores.base import ExecutionQuery, Lease, Store


async def test_create_then_get_round_trips_every_field(store: Store) -> None:
    execution = full_execution()
    created, is_new = await store.create(execution)
    assert is_new
    assert created.id == execution.id
    got = await store.get(execution.id)
    assert got == execution
    assert got is not execution
    # Every stored time comes back aware.
    assert got.created_at.tzinfo is not None
    assert got.tokens[0].wait_deadline_at is not None
    assert got.tokens[0].wait_deadline_at.tzinfo is not None


def _differences(left: Execution, right: Execution) -> list[str]:
    return [
        f"{f.name}: {getattr(left, f.name)!r} != {getattr(right, f.name)!r}"
        for f in fields(Execution)
        if getattr(left, f.name) != getattr(right, f.name)
    ]


def _odd_times(execution: Execution) -> Execution:
    """``execution`` with every header time off the whole second (microseconds count)."""
    us = timedelta(microseconds=123_457)
    return replace(
        execution, created_at=T0 + us, updated_at=at(5) + us, started_at=at(1) + us,
        idempotency_expires_at=at(86400) + us, deadline_at=at(7200) + us,
    )  # fmt: skip


@pytest.mark.parametrize("leased", [False, True], ids=["plain", "leased"])
async def test_created_copy_equals_get_field_by_field(store: Store, leased: bool) -> None:
    # ``create`` returns the stored execution without reading it back: what it returns
    # must be exactly what ``get`` loads (context, tenant, correlation id, idempotency
    # key, every time to the microsecond).
    execution = _odd_times(full_execution())
    lease = None
    if leased:
        execution.status = ExecutionStatus.RUNNING
        lease = Lease(execution_id=execution.id, owner="w", token=1, expires_at=at(30))
    created, is_new = await store.create(execution, [event(execution.id, 1)], lease=lease)
    assert is_new
    got = await store.get(execution.id)
    assert got is not None
    assert _differences(created, got) == []
    assert (created.tenant_id, created.correlation_id) == ("tenant-a", "corr-1")
    assert created.idempotency_key == "idem-1"
    assert created.context == {"order": {"id": 42, "items": [1, 2, 3]}, "name": "Zoë ☃"}
    assert created.created_at == T0 + timedelta(microseconds=123_457)


async def test_created_copy_of_a_minimal_execution_equals_get(store: Store) -> None:
    execution = make_execution(context={"steps": 1, "run": "ab"}, started_at=at(1))
    created, _ = await store.create(execution)
    got = await store.get(execution.id)
    assert got is not None
    assert _differences(created, got) == []


async def test_get_missing_is_none(store: Store) -> None:
    assert await store.get("nope") is None


async def test_get_returns_a_copy(store: Store) -> None:
    execution = make_execution(context={"a": {"b": 1}})
    await store.create(execution)
    got = await store.get(execution.id)
    assert got is not None
    got.context["a"]["b"] = 2
    got.tokens[0].step_id = "elsewhere"
    again = await store.get(execution.id)
    assert again is not None
    assert again.context == {"a": {"b": 1}}
    assert again.tokens[0].step_id == "start"


@pytest.mark.parametrize(
    "value",
    [
        {"deep": {"er": {"est": [1, {"x": [None, True, False, 1.5, -3]}]}}},
        "unicode: Zoë, 東京, emoji 🐒, nul-free \u2028",
        "x" * 1_000_000,
        [list(range(1000)), {"k": "v" * 1000}],
        2**62,
        0.1,
        None,
        {},
        [],
    ],
    ids=[
        "nested",
        "unicode",
        "large",
        "lists",
        "bigint",
        "float",
        "null",
        "empty-obj",
        "empty-list",
    ],
)
async def test_context_values_round_trip(store: Store, value: object) -> None:
    execution = make_execution(context={"value": value, "ключ": 1})
    await store.create(execution)
    got = await store.get(execution.id)
    assert got is not None
    assert got.context == {"value": value, "ключ": 1}


async def test_create_writes_initial_events(store: Store) -> None:
    execution = make_execution()
    events = [event(execution.id, 1, "execution.created"), event(execution.id, 2)]
    await store.create(execution, events)
    assert await store.events(execution.id) == events


async def test_duplicate_id_is_a_store_error(store: Store) -> None:
    execution = make_execution()
    await store.create(execution)
    with pytest.raises(errors.StoreError):
        await store.create(make_execution(id=execution.id))


async def test_duplicate_id_with_the_same_context_keys_changes_nothing(store: Store) -> None:
    execution = make_execution(context={"a": 1, "b": 2})
    await store.create(execution)
    with pytest.raises(errors.StoreError, match="already exists"):
        await store.create(make_execution(id=execution.id, context={"a": 9, "b": 9}))
    with pytest.raises(errors.StoreError, match="already exists"):
        await store.create(make_execution(id=execution.id, context={"a": 9}))
    got = await store.get(execution.id)
    assert got is not None
    assert got.context == {"a": 1, "b": 2}


# -- idempotency -----------------------------------------------------------------------


def keyed(key: str = "k1", **fields: Any) -> Execution:
    """An execution with idempotency key ``key``, expiring an hour after T0."""
    values: dict[str, Any] = {"idempotency_key": key, "idempotency_expires_at": at(3600)}
    values.update(fields)
    return make_execution(**values)


async def test_same_key_returns_existing_and_writes_nothing(store: Store) -> None:
    first = keyed(context={"n": 1})
    second = keyed(created_at=at(60), context={"n": 2})
    _created, is_new = await store.create(first)
    assert is_new
    existing, is_new = await store.create(second, [event(second.id, 1)])
    assert not is_new
    assert existing.id == first.id
    assert existing.context == {"n": 1}
    assert await store.get(second.id) is None
    assert await store.events(second.id) == []


async def test_key_is_scoped_by_tenant_and_flow(store: Store) -> None:
    base = keyed(tenant_id="t1")
    assert (await store.create(base))[1]
    other_tenant = keyed(tenant_id="t2")
    no_tenant = keyed(tenant_id=None)
    other_flow = keyed(tenant_id="t1", flow_id="other")
    for execution in (other_tenant, no_tenant, other_flow):
        created, is_new = await store.create(execution)
        assert is_new
        assert created.id == execution.id
    # And each of those scopes now deduplicates on its own.
    created, is_new = await store.create(keyed(tenant_id=None, created_at=at(1)))
    assert not is_new
    assert created.id == no_tenant.id


async def test_expired_key_creates_a_new_execution(store: Store) -> None:
    first = keyed(idempotency_expires_at=at(60))
    await store.create(first)
    # Expiry is compared with the new execution's created_at: at(60) is not after at(60).
    second = keyed(created_at=at(60), idempotency_expires_at=at(120))
    created, is_new = await store.create(second)
    assert is_new
    assert created.id == second.id
    # The key now points at the newer execution.
    third = keyed(created_at=at(90))
    created, is_new = await store.create(third)
    assert not is_new
    assert created.id == second.id


async def test_key_without_expiry_does_not_deduplicate(store: Store) -> None:
    # Interpretation (see the Store.create docstring): the window is
    # "idempotency_expires_at is after created_at"; no expiry means no window.
    first = keyed(idempotency_expires_at=None)
    await store.create(first)
    created, is_new = await store.create(keyed(idempotency_expires_at=None, created_at=at(1)))
    assert is_new
    assert created.id != first.id


async def test_concurrent_creates_with_one_key_make_one_execution(store: Store) -> None:
    candidates = [keyed("race", flow_id="race-flow", created_at=at(i / 1000)) for i in range(50)]
    results = await asyncio.gather(*(store.create(c) for c in candidates))
    assert sum(1 for _, is_new in results if is_new) == 1
    assert len({created.id for created, _ in results}) == 1
    page = await store.list(ExecutionQuery(flow_id="race-flow"))
    assert len(page.items) == 1


async def test_created_execution_has_no_lease(store: Store) -> None:
    execution = make_execution()
    await store.create(execution)
    acquired = await store.acquire(execution.id, owner="w", now=T0, lease_for=timedelta(1))
    assert acquired.lease is not None
    assert acquired.lease.token >= 1
    assert acquired.execution.status is ExecutionStatus.RUNNING
    assert replace(acquired.execution, status=ExecutionStatus.PENDING, started_at=None) == (
        execution
    )

"""Contract: events written together (one commit) read back one by one, in order, with
their own types, times, tenants and payloads, from any ``after`` (also mid-commit)."""

from __future__ import annotations

from contract.factories import at, make_execution, step
from flowmonkey.model.events import Event
from flowmonkey.stores.base import Store


def _event(execution_id: str, sequence: int, tenant: str | None = None) -> Event:
    data = {"step_id": f"s{sequence}", "n": sequence, "execution_id": execution_id}
    return Event(f"type.{sequence}", execution_id, at(sequence), data, sequence, tenant)


def _shape(events: list[Event]) -> list[tuple[object, ...]]:
    return [(e.sequence, e.type, e.timestamp, e.tenant_id, e.data) for e in events]


async def test_events_of_one_commit_read_back_individually(store: Store) -> None:
    execution = make_execution(id="ev")
    created = [_event("ev", 1), _event("ev", 2)]
    await store.create(execution, created)
    acquired = await store.acquire("ev", owner="w", now=at(0), lease_for=at(30) - at(0))
    assert acquired.lease is not None
    working = acquired.execution
    working.event_seq = 6
    written = [_event("ev", 3, "t"), _event("ev", 4), _event("ev", 5), _event("ev", 6)]
    await store.commit(acquired.lease, step(working, events=written))
    everything = created + written
    assert _shape(await store.events("ev")) == _shape(everything)
    for after in range(7):
        assert _shape(await store.events("ev", after=after)) == _shape(everything[after:])
    assert all(e.execution_id == "ev" for e in await store.events("ev"))


async def test_an_event_payload_keeps_a_foreign_execution_id(store: Store) -> None:
    await store.create(make_execution(id="mine"))
    acquired = await store.acquire("mine", owner="w", now=at(0), lease_for=at(30) - at(0))
    assert acquired.lease is not None
    working = acquired.execution
    working.event_seq = 1
    odd = Event("child.started", "mine", at(1), {"execution_id": "other"}, 1)
    await store.commit(acquired.lease, step(working, events=[odd]))
    (stored,) = await store.events("mine")
    assert stored.data == {"execution_id": "other"}

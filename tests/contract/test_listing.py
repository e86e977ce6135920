"""Contract: list (filters, pagination), find_children, and stored flow definitions."""

from __future__ import annotations

from typing import Any

import pytest

from contract.factories import T0, at, make_execution, started, step, step_record
from flowmonkey import errors
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores.base import ExecutionQuery, Store
from flowmonkey.testing import make_engine


async def ids(store: Store, **filters: Any) -> list[str]:
    """Ids of one page."""
    page = await store.list(ExecutionQuery(**filters))
    return [e.id for e in page.items]


async def test_list_is_newest_first_with_context_and_no_history(store: Store) -> None:
    execution, lease = await started(store, make_execution(id="old", context={"a": 1}))
    await store.commit(lease, step(execution, history=[step_record()]))
    await store.create(make_execution(id="new", created_at=at(5)))
    page = await store.list(ExecutionQuery())
    assert [e.id for e in page.items] == ["new", "old"]
    assert page.next_cursor is None
    assert page.items[1].context == {"a": 1}
    assert page.items[1].history == []
    assert page.items[1].status is ExecutionStatus.RUNNING


async def test_list_filters(store: Store) -> None:
    rows = [
        make_execution(id="a", flow_id="f1", tenant_id="t1", correlation_id="c1", created_at=at(1)),
        make_execution(id="b", flow_id="f2", tenant_id="t1", created_at=at(2),
                       status=ExecutionStatus.COMPLETED),
        make_execution(id="c", flow_id="f1", tenant_id="t2", created_at=at(3),
                       status=ExecutionStatus.WAITING, parent_execution_id="a"),
        make_execution(id="d", flow_id="f1", created_at=at(4), status=ExecutionStatus.FAILED),
    ]  # fmt: skip
    for execution in rows:
        await store.create(execution)
    assert await ids(store) == ["d", "c", "b", "a"]
    assert await ids(store, status=[ExecutionStatus.PENDING]) == ["a"]
    assert await ids(store, status=[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED]) == [
        "d",
        "b",
    ]
    assert await ids(store, flow_id="f1") == ["d", "c", "a"]
    assert await ids(store, tenant_id="t1") == ["b", "a"]
    assert await ids(store, tenant_id="t2") == ["c"]
    assert await ids(store, correlation_id="c1") == ["a"]
    assert await ids(store, parent_execution_id="a") == ["c"]
    # created_after is inclusive, created_before exclusive.
    assert await ids(store, created_after=at(2)) == ["d", "c", "b"]
    assert await ids(store, created_before=at(3)) == ["b", "a"]
    assert await ids(store, created_after=at(2), created_before=at(4), flow_id="f1") == ["c"]
    assert await ids(store, flow_id="nope") == []


async def test_pagination_has_no_duplicates_or_gaps(store: Store) -> None:
    # Ties on created_at are ordered by id, so pages cut through them cleanly.
    expected = []
    for i in range(23):
        execution = make_execution(id=f"e{i:02d}", created_at=at(i // 4), tenant_id="t")
        await store.create(execution)
        expected.append(execution.id)
    await store.create(make_execution(id="other-tenant", created_at=at(2), tenant_id="u"))
    expected.sort(key=lambda i: (int(i[1:]) // 4, i), reverse=True)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list(ExecutionQuery(tenant_id="t", limit=5, cursor=cursor))
        pages += 1
        seen.extend(e.id for e in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.items) == 5
    assert seen == expected
    assert pages == 5


async def test_exact_last_page_has_no_cursor(store: Store) -> None:
    for i in range(4):
        await store.create(make_execution(id=f"e{i}", created_at=at(i)))
    first = await store.list(ExecutionQuery(limit=2))
    assert first.next_cursor is not None
    second = await store.list(ExecutionQuery(limit=2, cursor=first.next_cursor))
    assert [e.id for e in second.items] == ["e1", "e0"]
    assert second.next_cursor is None


async def test_find_children(store: Store) -> None:
    parent = make_execution(id="parent")
    await store.create(parent)
    for child_id, created, parent_id in [
        ("c2", at(2), "parent"),
        ("c1", at(1), "parent"),
        ("grandchild", at(3), "c1"),
        ("unrelated", at(1), None),
    ]:
        await store.create(
            make_execution(id=child_id, created_at=created, parent_execution_id=parent_id,
                           parent_step_id="spawn", context={"n": child_id})
        )  # fmt: skip
    children = await store.find_children("parent")
    assert [c.id for c in children] == ["c1", "c2"]
    assert children[0].context == {"n": "c1"}
    assert children[0].parent_step_id == "spawn"
    assert [c.id for c in await store.find_children("c1")] == ["grandchild"]
    assert await store.find_children("nobody") == []


# -- flows --------------------------------------------------------------------------------


def flow(flow_id: str, version: str, **extra: Any) -> dict[str, Any]:
    """A flow definition in the FlowMonkey JSON shape."""
    return {
        "id": flow_id,
        "version": version,
        "initialStepId": "a",
        "steps": {"a": {"type": "noop", "config": {"n": 1}, "transitions": {}}},
        **extra,
    }


async def test_save_and_get_flow(store: Store) -> None:
    definition = flow("orders", "1.0.0", name="Orders ✓")
    assert await store.save_flow(definition, now=at(1))
    assert not await store.save_flow(dict(definition), now=at(2))  # same version, same body
    stored = await store.get_flow("orders", "1.0.0")
    assert stored is not None
    assert stored.flow_id == "orders"
    assert stored.version == "1.0.0"
    assert stored.definition == definition
    assert stored.created_at == at(1)
    assert await store.get_flow("orders", "9.9.9") is None
    assert await store.get_flow("missing") is None
    assert await store.flow_versions("missing") == []


async def test_flow_versions_are_immutable(store: Store) -> None:
    await store.save_flow(flow("orders", "1.0.0"), now=T0)
    with pytest.raises(errors.FlowValidationError) as caught:
        await store.save_flow(flow("orders", "1.0.0", name="changed"), now=T0)
    assert caught.value.flow_id == "orders"
    assert [issue.path for issue in caught.value.issues] == ["version"]
    assert "immutable" in caught.value.issues[0].message
    stored = await store.get_flow("orders", "1.0.0")
    assert stored is not None
    assert "name" not in stored.definition


async def test_latest_flow_is_by_semver(store: Store) -> None:
    for version in ("1.9.0", "1.10.0", "1.2.0", "1.10.0-rc.1", "0.9"):
        await store.save_flow(flow("orders", version), now=T0)
    await store.save_flow(flow("billing", "2.0.0"), now=T0)
    latest = await store.get_flow("orders")
    assert latest is not None
    assert latest.version == "1.10.0"
    assert await store.flow_versions("orders") == ["1.10.0", "1.10.0-rc.1", "1.9.0", "1.2.0", "0.9"]
    listed = await store.list_flows()
    assert [(f.flow_id, f.version) for f in listed] == [("billing", "2.0.0"), ("orders", "1.10.0")]


_BAD_CURSORS = [
    "garbage",  # not base64
    "W10=",  # base64 of []: wrong shape
    "WyJ4IiwiZSJd",  # ["x","e"]: not a time
    "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwiZSJd",  # a naive time: would not compare
    "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxXQ==",  # an id that is not a string
    "/w==",  # not UTF-8
    "",  # empty: treated as "no cursor" (first page), not an error
]


@pytest.mark.parametrize("cursor", _BAD_CURSORS)
async def test_a_garbled_cursor_is_a_typed_error(store: Store, cursor: str) -> None:
    await store.create(make_execution(id="e1"))
    if not cursor:
        page = await store.list(ExecutionQuery(cursor=cursor))
        assert [e.id for e in page.items] == ["e1"]
        return
    with pytest.raises(errors.InvalidCursor) as info:
        await store.list(ExecutionQuery(cursor=cursor))
    assert info.value.code == "INVALID_CURSOR"
    assert isinstance(info.value, ValueError)  # what stores raised before: still caught


async def test_engine_list_with_a_garbled_cursor_raises_invalid_cursor(store: Store) -> None:
    engine = make_engine(store=store)
    await store.create(make_execution(id="e1"))
    good = await engine.list(limit=1)
    assert [e.id for e in good.items] == ["e1"]
    with pytest.raises(errors.InvalidCursor):
        await engine.list(cursor="garbage")


async def test_every_store_holds_the_largest_definition_validation_accepts(store: Store) -> None:
    # The definition limits (flowmonkey.jsonvalues) are meant to be what every store can
    # write: the deepest nesting, the extreme integers and 1 MiB all round-trip.
    import json

    from flowmonkey.definitions import load_flow
    from flowmonkey.jsonvalues import INT_MAX, INT_MIN, MAX_DEFINITION_BYTES, MAX_DEFINITION_DEPTH

    deep: Any = []
    for _ in range(MAX_DEFINITION_DEPTH - 5):  # flow 1, steps 2, a 3, config 4, c 5...
        deep = [deep]
    config = {"c": deep, "hi": INT_MAX, "lo": INT_MIN, "text": "é€😀"}
    base = {
        "id": "big",
        "version": "1.0.0",
        "initialStepId": "a",
        "steps": {"a": {"id": "a", "type": "noop", "config": config}},
        "blob": "",
    }
    used = len(json.dumps(load_flow(base).to_dict(), separators=(",", ":")).encode())
    base["blob"] = "x" * (MAX_DEFINITION_BYTES - used)
    definition = load_flow(base).to_dict()
    assert await store.save_flow(definition, now=at(1))
    stored = await store.get_flow("big", "1.0.0")
    assert stored is not None
    assert stored.definition == definition


async def test_count_by_status_filters_by_tenant_and_flow(store: Store) -> None:
    await store.create(make_execution(id="a", flow_id="f1", tenant_id="t1"))
    await store.create(make_execution(id="b", flow_id="f1", tenant_id="t1", created_at=at(1),
                                      status=ExecutionStatus.COMPLETED))  # fmt: skip
    await store.create(make_execution(id="c", flow_id="f2", tenant_id="t2", created_at=at(2),
                                      status=ExecutionStatus.COMPLETED))  # fmt: skip
    await store.create(make_execution(id="d", flow_id="f2", created_at=at(3),
                                      status=ExecutionStatus.FAILED))  # fmt: skip
    assert await store.count_by_status() == {"pending": 1, "completed": 2, "failed": 1}
    assert await store.count_by_status(tenant_id="t1") == {"pending": 1, "completed": 1}
    assert await store.count_by_status(flow_id="f2") == {"completed": 1, "failed": 1}
    assert await store.count_by_status(tenant_id="t2", flow_id="f1") == {}

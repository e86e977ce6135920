"""Contract: data tables (definitions, rows written by commits or by hand, queries)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from contract.factories import LEASE, at, make_execution, started, step
from flowmonkey import errors
from flowmonkey.model.tables import (
    InvalidTable,
    RowFilter,
    RowQuery,
    TableConflict,
    TableDef,
    TableNotFound,
    TableRow,
)
from flowmonkey.stores.base import Store

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "total": {"type": "number"},
        "paid": {"type": "boolean"},
        "note": {"type": "string"},
    },
    "required": ["order_id"],
}
ORDERS = TableDef(name="orders", schema=SCHEMA, indexed=("total", "paid"), created_at=at(0))


def row(data: dict[str, Any], *, tenant: str | None = "acme", n: float = 1) -> TableRow:
    return TableRow(table="orders", data=data, tenant_id=tenant, created_at=at(n))


async def test_a_table_round_trips_and_creating_it_again_is_a_no_op(store: Store) -> None:
    stored, created = await store.create_table(ORDERS)
    assert created and stored == ORDERS
    again, created = await store.create_table(replace(ORDERS, created_at=at(99)))
    assert not created
    assert again == ORDERS  # the first creation time stays
    assert await store.get_table("orders") == ORDERS
    assert await store.get_table("missing") is None
    other = TableDef(name="audit", schema={"type": "object"}, created_at=at(1))
    await store.create_table(other)
    assert [t.name for t in await store.list_tables()] == ["audit", "orders"]


async def test_a_table_definition_never_changes(store: Store) -> None:
    await store.create_table(ORDERS)
    with pytest.raises(TableConflict) as caught:
        await store.create_table(replace(ORDERS, indexed=("total",)))
    assert caught.value.code == "TABLE_CONFLICT"
    changed = {**SCHEMA, "required": ["order_id", "total"]}
    with pytest.raises(TableConflict):
        await store.create_table(replace(ORDERS, schema=changed))
    assert await store.get_table("orders") == ORDERS


async def test_rows_of_an_unknown_table_are_refused_and_nothing_is_written(store: Store) -> None:
    await store.create_table(ORDERS)
    good = row({"order_id": "a"})
    stray = TableRow(table="nope", data={}, created_at=at(1))
    with pytest.raises(TableNotFound):
        await store.insert_rows([good, stray])
    assert (await store.query_rows(ORDERS, RowQuery(table="orders"))).items == []


async def test_rows_round_trip_newest_first_with_their_stamps(store: Store) -> None:
    await store.create_table(ORDERS)
    first = row({"order_id": "a", "total": 10.5, "nested": {"x": [1, "ü"]}}, n=1)
    second = TableRow(
        table="orders", data={"order_id": "b"}, tenant_id=None, execution_id="ex-1",
        step_id="charge", created_at=at(2),
    )  # fmt: skip
    await store.insert_rows([first, second])
    page = await store.query_rows(ORDERS, RowQuery(table="orders"))
    assert [r.id for r in page.items] == [second.id, first.id]
    got = page.items[1]
    assert got.data == first.data and got.tenant_id == "acme" and got.created_at == at(1)
    assert page.items[0].execution_id == "ex-1" and page.items[0].step_id == "charge"
    assert page.items[0].seq > got.seq
    assert page.next_cursor is None
    oldest = await store.query_rows(ORDERS, RowQuery(table="orders", descending=False))
    assert [r.id for r in oldest.items] == [first.id, second.id]


async def test_tenants_see_only_their_rows(store: Store) -> None:
    await store.create_table(ORDERS)
    await store.insert_rows(
        [row({"order_id": "a"}, tenant="acme"), row({"order_id": "b"}, tenant="globex")]
    )
    acme = await store.query_rows(ORDERS, RowQuery(table="orders", tenant_id="acme"))
    assert [r.data["order_id"] for r in acme.items] == ["a"]
    every = await store.query_rows(ORDERS, RowQuery(table="orders"))
    assert len(every.items) == 2


async def _ids(store: Store, *filters: RowFilter, **query: Any) -> list[str]:
    page = await store.query_rows(ORDERS, RowQuery(table="orders", filters=filters, **query))
    return [r.data["order_id"] for r in page.items]


async def test_filters_equality_on_any_field_and_comparisons_on_indexed(store: Store) -> None:
    await store.create_table(ORDERS)
    await store.insert_rows(
        [
            row({"order_id": "a", "total": 5, "paid": True, "note": "x"}, n=1),
            row({"order_id": "b", "total": 10.5, "paid": False, "note": "y"}, n=2),
            row({"order_id": "c", "total": 20, "paid": True}, n=3),
            row({"order_id": "d"}, n=4),
        ]
    )
    assert await _ids(store, RowFilter(field="note", value="x")) == ["a"]
    assert await _ids(store, RowFilter(field="order_id", value="c")) == ["c"]
    assert await _ids(store, RowFilter(field="paid", value=True)) == ["c", "a"]
    assert await _ids(store, RowFilter(field="total", value=20)) == ["c"]
    assert await _ids(store, RowFilter(field="total", op="gt", value=5)) == ["c", "b"]
    assert await _ids(store, RowFilter(field="total", op="gte", value=5)) == ["c", "b", "a"]
    assert await _ids(store, RowFilter(field="total", op="lt", value=20)) == ["b", "a"]
    assert await _ids(store, RowFilter(field="total", op="lte", value=10.5)) == ["b", "a"]
    assert await _ids(store, RowFilter(field="total", op="ne", value=5)) == ["c", "b"]
    assert await _ids(
        store, RowFilter(field="total", op="gt", value=1), RowFilter(field="paid", value=True)
    ) == ["c", "a"]
    assert await _ids(store, RowFilter(field="note", value="zzz")) == []


async def test_ordering_by_an_indexed_field_puts_missing_values_first(store: Store) -> None:
    await store.create_table(ORDERS)
    await store.insert_rows(
        [
            row({"order_id": "a", "total": 30}, n=1),
            row({"order_id": "b"}, n=2),
            row({"order_id": "c", "total": 10}, n=3),
            row({"order_id": "d", "total": 30}, n=4),
        ]
    )
    assert await _ids(store, order_by="total", descending=False) == ["b", "c", "a", "d"]
    assert await _ids(store, order_by="total", descending=True) == ["d", "a", "c", "b"]


@pytest.mark.parametrize(
    ("order_by", "descending"), [(None, True), (None, False), ("total", False), ("total", True)]
)
async def test_cursor_pages_cover_every_row_once(
    store: Store, order_by: str | None, descending: bool
) -> None:
    await store.create_table(ORDERS)
    totals = [3, None, 1, 3, 2, None, 3, 1, 2, 3, None]
    await store.insert_rows(
        [
            row({"order_id": str(i)} | ({"total": t} if t is not None else {}), n=i)
            for i, t in enumerate(totals)
        ]
    )
    whole = await _ids(store, order_by=order_by, descending=descending, limit=100)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await store.query_rows(
            ORDERS,
            RowQuery(
                table="orders", order_by=order_by, descending=descending, limit=3, cursor=cursor
            ),
        )
        seen += [r.data["order_id"] for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == whole
    assert sorted(seen, key=int) == [str(i) for i in range(len(totals))]


async def test_a_malformed_cursor_is_refused(store: Store) -> None:
    await store.create_table(ORDERS)
    with pytest.raises(InvalidTable) as caught:
        await store.query_rows(ORDERS, RowQuery(table="orders", cursor="not-a-cursor"))
    assert caught.value.code == "BAD_CURSOR"


async def test_a_commit_writes_its_rows_in_the_same_transaction(store: Store) -> None:
    await store.create_table(ORDERS)
    execution, lease = await started(store, make_execution(tenant_id="acme"))
    pipe_row = TableRow(
        table="orders", data={"order_id": "x1", "total": 7}, tenant_id="acme",
        execution_id=execution.id, step_id="start", created_at=at(1),
    )  # fmt: skip
    execution.step_count = 1
    await store.commit(lease, step(execution, table_rows=[pipe_row]))
    page = await store.query_rows(ORDERS, RowQuery(table="orders", tenant_id="acme"))
    assert [(r.id, r.execution_id, r.step_id) for r in page.items] == [
        (pipe_row.id, execution.id, "start")
    ]


async def test_commits_of_one_row_and_of_several_store_the_same_rows(store: Store) -> None:
    # PostgreSQL writes a single row with scalar parameters and several as one json
    # document: both must store exactly the same thing, whatever the values.
    await store.create_table(ORDERS)
    execution, lease = await started(store, make_execution(tenant_id="acme"))

    def pipe_row(n: int, tenant: str | None) -> TableRow:
        data: dict[str, Any] = {
            "order_id": f"o-{n}", "total": n + 0.25, "paid": n % 2 == 0,
            "note": 'quote " backslash \\ ü \u2028', "nested": {"a": [1, None, "x"]},
        }  # fmt: skip
        if n % 3 == 0:
            data = {"order_id": f"o-{n}"}
        return TableRow(
            table="orders", data=data, tenant_id=tenant, execution_id=execution.id,
            step_id=f"s{n}", created_at=at(n + 0.123456),
        )  # fmt: skip

    written: list[TableRow] = []
    # One row at a time past PostgreSQL's switch to a generic plan (5 executions), with
    # and without a tenant; then two rows in one commit.
    batches = [[pipe_row(n, "acme" if n % 2 else None)] for n in range(8)]
    batches.append([pipe_row(8, "acme"), pipe_row(9, None)])
    for n, rows in enumerate(batches, start=1):
        execution.step_count = n
        await store.commit(lease, step(execution, table_rows=rows))
        written += rows
    page = await store.query_rows(ORDERS, RowQuery(table="orders", descending=False, limit=50))

    def fields(r: TableRow) -> tuple[Any, ...]:
        return (r.id, r.table, r.tenant_id, r.execution_id, r.step_id, r.created_at, r.data)

    assert [fields(r) for r in page.items] == [fields(r) for r in written]
    seqs = [r.seq for r in page.items]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_commit_under_a_lost_lease_writes_no_row(store: Store) -> None:
    await store.create_table(ORDERS)
    execution, lease = await started(store)
    taken = await store.acquire(execution.id, owner="w2", now=at(100), lease_for=LEASE, steal=True)
    assert taken.lease is not None
    stale_row = TableRow(table="orders", data={"order_id": "stale"}, created_at=at(1))
    with pytest.raises(errors.LeaseLost):
        await store.commit(lease, step(execution, table_rows=[stale_row]))
    assert (await store.query_rows(ORDERS, RowQuery(table="orders"))).items == []


async def _export(store: Store, fmt: str, **query: Any) -> str:
    chunks = store.export_rows(
        ORDERS,
        RowQuery(table="orders", descending=False, limit=2, **query),
        fmt,  # type: ignore[arg-type]
    )
    return b"".join([c async for c in chunks]).decode()


async def test_exports_are_the_same_text_on_every_store(store: Store) -> None:
    await store.create_table(ORDERS)
    first = TableRow(
        id="r1", table="orders", tenant_id="acme", execution_id="ex-1", step_id="s",
        created_at=at(1.5),
        data={"order_id": "a,1", "total": 10.5, "paid": True, "note": 'say "hi"', "x": [1]},
    )  # fmt: skip
    second = TableRow(id="r2", table="orders", data={"order_id": "b"}, created_at=at(2))
    third = TableRow(
        id="r3", table="orders", tenant_id="acme", created_at=at(3),
        data={"order_id": "c", "total": 3, "paid": False, "note": "line\nbreak"},
    )  # fmt: skip
    await store.insert_rows([first, second, third])
    lines = (await _export(store, "jsonl")).splitlines()
    assert [orjson.loads(line) for line in lines] == [
        {"id": "r1", "data": first.data, "tenant_id": "acme", "execution_id": "ex-1",
         "step_id": "s", "created_at": "2026-01-01T00:00:01.500000+00:00"},
        {"id": "r2", "data": {"order_id": "b"}, "tenant_id": None, "execution_id": None,
         "step_id": None, "created_at": "2026-01-01T00:00:02.000000+00:00"},
        {"id": "r3", "data": third.data, "tenant_id": "acme", "execution_id": None,
         "step_id": None, "created_at": "2026-01-01T00:00:03.000000+00:00"},
    ]  # fmt: skip
    table = await _export(store, "csv")
    assert table == (
        "id,tenant_id,execution_id,step_id,created_at,order_id,total,paid,note\n"
        'r1,acme,ex-1,s,2026-01-01T00:00:01.500000+00:00,"a,1",10.5,true,"say ""hi"""\n'
        "r2,,,,2026-01-01T00:00:02.000000+00:00,b,,,\n"
        'r3,acme,,,2026-01-01T00:00:03.000000+00:00,c,3,false,"line\nbreak"\n'
    )
    mine = await _export(
        store, "csv", tenant_id="acme", filters=[RowFilter(field="total", op="gt", value=5)]
    )
    assert mine.splitlines()[1:] == [table.splitlines()[1]]
    newest = await _export(store, "jsonl", order_by="total")
    assert [orjson.loads(x)["id"] for x in newest.splitlines()] == ["r2", "r3", "r1"]


@pytest.mark.parametrize(
    "query",
    [
        RowQuery(table="orders", filters=[RowFilter(field="x'); DROP TABLE t; --", value=1)]),
        RowQuery(table="orders", filters=[RowFilter(field="note", op="gt", value="a")]),
        RowQuery(table="orders", filters=[RowFilter(field="total", op="like", value=1)]),  # type: ignore[arg-type]
        RowQuery(table="orders", order_by="note"),
        RowQuery(table="orders", limit=0),
    ],
)
async def test_hand_built_queries_the_stores_cannot_answer_are_refused(
    store: Store, query: RowQuery
) -> None:
    await store.create_table(ORDERS)
    await store.insert_rows([row({"order_id": "a", "total": 1})])
    with pytest.raises(InvalidTable):
        await store.query_rows(ORDERS, query)
    assert len((await store.query_rows(ORDERS, RowQuery(table="orders"))).items) == 1


def _batch_row(i: int) -> TableRow:
    data: dict[str, Any] = {"order_id": str(i), "paid": i % 2 == 0}
    if i % 13:
        data["total"] = (i * 37) % 101
    return row(data, tenant="acme" if i % 3 else "other", n=i)


async def _paged(store: Store, limit: int, **query: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.query_rows(
            ORDERS, RowQuery(table="orders", limit=limit, cursor=cursor, **query)
        )
        seen += [r.data["order_id"] for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen


async def test_queries_on_indexed_fields_stay_exact_as_rows_pile_up(store: Store) -> None:
    # SQLite indexes a field in batches of 128 rows (the rest is read by a bounded scan):
    # every query must give the same answer below, at and above each batch boundary.
    await store.create_table(ORDERS)
    rows: list[TableRow] = []
    for size in (1, 126, 1, 1, 126, 2, 50):
        chunk = [_batch_row(len(rows) + i) for i in range(size)]
        await store.insert_rows(chunk)
        rows += chunk

        def ids(keep: Any, order: Any = None, reverse: bool = False) -> list[str]:
            chosen = [r for r in rows if keep(r)]
            if order is None:
                chosen.reverse()  # newest first
            else:
                chosen.sort(key=order, reverse=reverse)
            return [r.data["order_id"] for r in chosen]

        def by_total(r: TableRow) -> tuple[Any, ...]:
            total = r.data.get("total")
            return (total is not None, total or 0, int(r.data["order_id"]))

        gt50 = RowFilter(field="total", op="gt", value=50)
        assert await _paged(store, 1000, filters=[gt50]) == ids(
            lambda r: r.data.get("total", 0) > 50
        )
        assert await _paged(store, 7, filters=[RowFilter(field="paid", value=True)],
                            order_by="total", descending=False) == ids(
            lambda r: r.data["paid"], by_total
        )  # fmt: skip
        assert await _paged(store, 50, tenant_id="acme", order_by="total") == ids(
            lambda r: r.tenant_id == "acme", by_total, reverse=True
        )
        lte = RowFilter(field="total", op="lte", value=10)
        assert await _paged(store, 1000, filters=[lte], order_by="total", descending=False) == ids(
            lambda r: r.data.get("total", 99) <= 10, by_total
        )
        assert await _paged(store, 9) == ids(lambda r: True)
    assert len(rows) == 307

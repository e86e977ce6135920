"""SQLite data tables since schema version 6: a rowid table per data table, and field
indexes written in batches.

A row goes in with ``indexed = 0`` (outside every partial field index); the insert of a
table's 128th, 256th... row flags the 128 rows up to it in the same transaction. These
tests hold the invariant the queries rely on (the unflagged rows are exactly the ones
above the last multiple of 128), check it survives a commit that rolls back at the
boundary, that databases made before the migration keep their rows (moved out of the
shared ``table_rows``), and that each half of a query reads an index range.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from contract.factories import LEASE, at, started, step
from flowmonkey import errors
from flowmonkey.model.tables import RowFilter, RowQuery, TableDef, TableRow
from flowmonkey.stores import migrate, table_sql
from flowmonkey.stores import sqlite_ops as ops
from flowmonkey.stores.sqlite import SqliteStore

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "total": {"type": "number"}},
}
ORDERS = TableDef(name="orders", schema=SCHEMA, indexed=("total",), created_at=at(0))
BATCH = table_sql.SQLITE_INDEX_BATCH


def _row(i: int) -> TableRow:
    return TableRow(table="orders", data={"order_id": str(i), "total": i % 10}, created_at=at(i))


def _flags(path: Path) -> tuple[int, int, int]:
    """``(rows, rows not yet in the field index, lowest seq of those or 0)``."""
    with sqlite3.connect(path) as db:
        total, pending, low = db.execute(
            "SELECT COUNT(*), SUM(indexed = 0), MIN(CASE WHEN indexed = 0 THEN seq END) "
            "FROM rows_orders"
        ).fetchone()
    return total, pending or 0, low or 0


async def _total_ids(store: SqliteStore, value: int) -> list[str]:
    query = RowQuery(table="orders", filters=[RowFilter(field="total", value=value)], limit=500)
    return [r.data["order_id"] for r in (await store.query_rows(ORDERS, query)).items]


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "t.db")
    await store.initialize()
    await store.create_table(ORDERS)
    yield store
    await store.close()


async def test_rows_join_the_index_by_whole_batches(store: SqliteStore, tmp_path: Path) -> None:
    await store.insert_rows([_row(i) for i in range(BATCH - 1)])
    assert _flags(tmp_path / "t.db") == (BATCH - 1, BATCH - 1, 1)
    await store.insert_rows([_row(BATCH - 1)])  # seq = BATCH: the batch is flagged
    assert _flags(tmp_path / "t.db") == (BATCH, 0, 0)
    await store.insert_rows([_row(i) for i in range(BATCH, 2 * BATCH + 5)])  # spans one
    assert _flags(tmp_path / "t.db") == (2 * BATCH + 5, 5, 2 * BATCH + 1)
    assert await _total_ids(store, 3) == [str(i) for i in reversed(range(3, 2 * BATCH + 5, 10))]


async def test_a_commit_that_rolls_back_at_the_boundary_flags_nothing(
    store: SqliteStore, tmp_path: Path
) -> None:
    await store.insert_rows([_row(i) for i in range(BATCH - 1)])
    execution, lease = await started(store)
    taken = await store.acquire(execution.id, owner="w2", now=at(100), lease_for=LEASE, steal=True)
    assert taken.lease is not None
    with pytest.raises(errors.LeaseLost):
        await store.commit(lease, step(execution, table_rows=[_row(BATCH - 1)]))
    assert _flags(tmp_path / "t.db") == (BATCH - 1, BATCH - 1, 1)
    assert taken.execution is not None
    taken.execution.step_count = 1
    await store.commit(taken.lease, step(taken.execution, table_rows=[_row(BATCH - 1)]))
    assert _flags(tmp_path / "t.db") == (BATCH, 0, 0)
    assert await _total_ids(store, 7) == [str(i) for i in reversed(range(7, BATCH, 10))]


def _version_5_database(path: Path) -> None:
    """A database as flowmonkey left it before migration 6 (``table_index``): rows of
    every table in the shared ``table_rows``, with per-row field indexes."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    target = ops.MigrationTarget(db)
    target.current_version()
    migrations = migrate.load_migrations("sqlite")
    ours = next(m.version for m in migrations if m.name == "table_index")
    for migration in migrations[: ours - 1]:
        target.apply(migration)
    db.execute(
        "INSERT INTO data_tables (name, definition, created_at) VALUES ('orders', ?, 0)",
        ('{"schema": {"type": "object", "properties": {"order_id": {"type": "string"}, '
         '"total": {"type": "number"}}}, "indexed": ["total"]}',),
    )  # fmt: skip
    # The field index exactly as version 5 named and created it.
    old = "table_rows_f_" + hashlib.sha256(b"sqlite\0orders\0total").hexdigest()[:20]
    db.execute(
        f"CREATE INDEX {old} ON table_rows (json_extract(data, '$.total'), seq) "
        "WHERE table_name = 'orders'"
    )
    db.executemany(
        "INSERT INTO table_rows (table_name, seq, id, created_at, data) "
        "VALUES ('orders', ?, ?, 0, ?)",
        [(i + 1, f"old-{i}", f'{{"order_id": "{i}", "total": {i % 10}}}') for i in range(200)],
    )
    db.execute("COMMIT")
    db.close()


async def test_a_database_from_before_version_6_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _version_5_database(path)
    store = SqliteStore(path)
    await store.initialize()
    try:
        assert _flags(path) == (200, 0, 0)  # moved rows are in the index already
        await store.insert_rows([_row(i) for i in range(200, 260)])  # crosses seq 256
        assert _flags(path) == (260, 4, 257)
        assert await _total_ids(store, 4) == [str(i) for i in reversed(range(4, 260, 10))]
        page = await store.query_rows(ORDERS, RowQuery(table="orders", limit=1))
        assert [(r.seq, r.id, r.table) for r in page.items] == [(260, page.items[0].id, "orders")]
        oldest = await store.query_rows(ORDERS, RowQuery(table="orders", descending=False, limit=1))
        assert [(r.seq, r.id) for r in oldest.items] == [(1, "old-0")]
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        version = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    assert "table_rows" not in names
    assert not any(n.startswith("table_rows_f_") and n not in _created(ORDERS) for n in names)
    assert version == len(migrate.load_migrations("sqlite"))


def _created(table: TableDef) -> set[str]:
    """Names of the tables, indexes and trigger made for ``table``."""
    return {s.split(" IF NOT EXISTS ")[1].split()[0] for s in
            table_sql.sqlite_table_statements(table)}  # fmt: skip


async def test_each_half_of_a_query_reads_an_index_range(
    store: SqliteStore, tmp_path: Path
) -> None:
    await store.insert_rows([_row(i) for i in range(1000)])
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("ANALYZE")
        query = RowQuery(
            table="orders", filters=[RowFilter(field="total", op="gt", value=8)],
            order_by="total", limit=20,
        )  # fmt: skip
        sql, params = table_sql.row_query("sqlite", ORDERS, query)
        plan = [r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
    reads = [line for line in plan if "rows_orders" in line]
    (index,) = [
        s.split(" IF NOT EXISTS ")[1].split()[0]
        for s in table_sql.sqlite_table_statements(ORDERS)
        if "'$.total'" in s
    ]
    assert reads == [
        f"SEARCH rows_orders USING INDEX {index} (<expr>>?)",
        "SEARCH rows_orders USING INTEGER PRIMARY KEY (rowid>?)",
        "SEARCH rows_orders",  # MAX(seq): the last rowid
    ]


async def test_rows_of_several_tables_in_one_call_keep_their_order(store: SqliteStore) -> None:
    audit = TableDef(name="audit", schema={"type": "object"}, created_at=at(0))
    await store.create_table(audit)
    other = [TableRow(table="audit", data={"n": n}, created_at=at(n)) for n in range(2)]
    await store.insert_rows([_row(0), other[0], other[1], _row(1), _row(2)])
    mine = await store.query_rows(ORDERS, RowQuery(table="orders", descending=False))
    assert [(r.seq, r.data["order_id"]) for r in mine.items] == [(1, "0"), (2, "1"), (3, "2")]
    theirs = await store.query_rows(audit, RowQuery(table="audit", descending=False))
    assert [(r.seq, r.table, r.data) for r in theirs.items] == [
        (1, "audit", {"n": 0}),
        (2, "audit", {"n": 1}),
    ]

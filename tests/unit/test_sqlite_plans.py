"""Query plans of the SQLite store (``EXPLAIN QUERY PLAN``).

Every periodic query reads its own partial index as a range that stops at the first row
not yet due (running rows aside: live work, bounded by the workers), and every listing
page is a backwards range of a listing index with no sort at all, so neither grows with
the number of parked executions. A change that loses an index or adds a sort fails here.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores import sqlite_queries as q
from flowmonkey.stores.base import ExecutionQuery
from flowmonkey.stores.cursors import encode_cursor
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.stores.sqlite_ops import list_sql

NOW = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.fixture
async def conn(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "plans.db")
    await store.initialize()  # the real migrations
    await store.close()
    db = sqlite3.connect(tmp_path / "plans.db")
    db.execute("ANALYZE")
    yield db
    db.close()


def _plan(conn: sqlite3.Connection, sql: str, params: Any) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def _table_reads(plan: list[str]) -> list[str]:
    return [line for line in plan if line.startswith(("SCAN executions", "SEARCH executions"))]


def test_due_reads_one_range_per_kind_of_due_time(conn: sqlite3.Connection) -> None:
    plan = _plan(conn, q.SELECT_DUE, {"now": 1, "limit": 10})
    assert sorted(_table_reads(plan)) == [
        "SEARCH executions USING INDEX executions_deadline (deadline_at>? AND deadline_at<?)",
        "SEARCH executions USING INDEX executions_wait_deadline "
        "(wait_deadline_at>? AND wait_deadline_at<?)",
        "SEARCH executions USING INDEX executions_wake (wake_at>? AND wake_at<?)",
    ]


def test_claim_reads_runnable_rows_only(conn: sqlite3.Connection) -> None:
    plan = _plan(conn, q.SELECT_CLAIMABLE, {"now": 1, "limit": 10})
    assert sorted(_table_reads(plan)) == [
        "SCAN executions USING INDEX executions_pending",
        "SEARCH executions USING INDEX executions_running (lease_expires_at<?)",
        "SEARCH executions USING INDEX executions_wake (wake_at>? AND wake_at<?)",
    ]


def test_claim_of_some_flows_and_the_survey_read_runnable_rows_only(
    conn: sqlite3.Connection,
) -> None:
    runnable = [
        "SCAN executions USING INDEX executions_pending",
        "SEARCH executions USING INDEX executions_running (lease_expires_at<?)",
        "SEARCH executions USING INDEX executions_wake (wake_at>? AND wake_at<?)",
    ]
    params = {"now": 1, "limit": 10, "flows": '[["f", "1.0.0"]]'}
    assert sorted(_table_reads(_plan(conn, q.SELECT_CLAIMABLE_OF_FLOWS, params))) == runnable
    assert sorted(_table_reads(_plan(conn, q.RUNNABLE_BY_FLOW, {"now": 1}))) == runnable


def test_stale_reads_running_rows_only(conn: sqlite3.Connection) -> None:
    plan = _plan(conn, q.SELECT_STALE, {"now": 1, "before": 1, "limit": 10})
    assert _table_reads(plan) == ["SCAN executions USING INDEX executions_running"]


LISTINGS = [
    (ExecutionQuery(), "executions_status"),
    (ExecutionQuery(status=[ExecutionStatus.WAITING]), "executions_status"),
    (ExecutionQuery(flow_id="f"), "executions_flow"),
    (ExecutionQuery(flow_id="f", status=[ExecutionStatus.FAILED]), "executions_flow"),
    (ExecutionQuery(tenant_id="t"), "executions_tenant"),
    (ExecutionQuery(tenant_id="t", flow_id="f"), "executions_tenant_flow"),
    (ExecutionQuery(tenant_id="t", correlation_id="c"), "executions_correlation"),
    (ExecutionQuery(correlation_id="c"), "executions_correlation"),
    (ExecutionQuery(parent_execution_id="p"), "executions_parent"),
    (
        ExecutionQuery(created_after=NOW - timedelta(days=2), created_before=NOW),
        "executions_status",
    ),
    (ExecutionQuery(flow_id="f", cursor=encode_cursor(NOW, "x")), "executions_flow"),
]


@pytest.mark.parametrize(("query", "index"), LISTINGS, ids=[i for _, i in LISTINGS])
def test_listing_pages_are_index_ranges_without_sort(
    conn: sqlite3.Connection, query: ExecutionQuery, index: str
) -> None:
    sql, args = list_sql(query)
    plan = _plan(conn, sql, ["waiting", *args])
    assert not any("TEMP B-TREE" in line for line in plan), plan
    (read,) = _table_reads(plan)
    # COVERING when the index holds every filter column; else the row is read for the rest.
    assert read.startswith(
        (
            f"SEARCH executions USING COVERING INDEX {index} (",
            f"SEARCH executions USING INDEX {index} (",
        )
    ), read
    if query.cursor or query.created_after:
        assert "created_at" in read, read  # the range starts at the cursor, not the top

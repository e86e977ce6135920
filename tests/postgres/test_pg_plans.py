"""Query plans of the PostgreSQL store on a table with statistics.

Every periodic query (due timers and deadlines, claims, stale leases) and every listing
the engine, CLI and API offer must be served by an index, and no plan may sort rows
that did not come through a ``LIMIT`` first: then a scheduler pass costs O(due work)
and a page O(page), however many executions are parked. The table holds parked,
running, pending and finished executions of several flows and tenants, then ``ANALYZE``
gives the planner real statistics (the plans a production database would get).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql

from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.stores import postgres_queries as q
from flowmonkey.stores.base import ExecutionQuery
from flowmonkey.stores.cursors import encode_cursor
from flowmonkey.stores.postgres import list_sql

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 1, 10, tzinfo=UTC)
ROWS = 60_000

# Parked (waiting on a 30-day timer) executions dominate, as in production; a few are
# pending, running or finished. Flows f0..f9, tenants t0..t19, one correlation id and one
# parent per 100 rows.
_FILL = """
INSERT INTO executions (id, flow_id, flow_version, status, tenant_id, correlation_id,
    parent_execution_id, created_at, updated_at, wake_at, deadline_at, wait_deadline_at,
    lease_owner, lease_token, lease_expires_at, spec, state)
SELECT 'e' || lpad(n::text, 8, '0'), 'f' || (n %% 10), '1.0.0',
    CASE WHEN n %% 5 = 0 THEN 'completed' WHEN n %% 97 = 0 THEN 'pending'
         WHEN n %% 89 = 0 THEN 'running' ELSE 'waiting' END,
    't' || (n %% 20), 'c' || (n %% 4),
    CASE WHEN n %% 3 = 0 THEN 'p' || (n %% 7) END,
    %(t0)s + n * interval '1 second', %(t0)s + n * interval '1 second',
    CASE WHEN n %% 5 <> 0 THEN %(now)s + interval '30 days' END,
    CASE WHEN n %% 5 <> 0 THEN %(now)s + interval '60 days' END,
    CASE WHEN n %% 5 <> 0 THEN %(now)s + interval '7 days' END,
    CASE WHEN n %% 89 = 0 THEN 'w' END, 1,
    CASE WHEN n %% 89 = 0 THEN %(now)s + interval '30 seconds' END,
    '\\x7b7d'::bytea, '\\x7b7d'::bytea
FROM generate_series(1, %(rows)s) AS n
"""


# Partial indexes over live work only (running executions): bounded by the workers'
# concurrency, not by the number of stored executions, so sorting their rows is fine.
_LIVE_WORK = frozenset({"executions_running_lease", "executions_pending"})
_LIVE_STATUS = ("(status = 'pending'::text)", "(status = 'running'::text)")


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", ()):
        out.extend(_nodes(child))
    return out


def _unbounded_sorts(plan: dict[str, Any]) -> list[str]:
    """Sort nodes whose input reads the executions table without a Limit in between."""
    bad = []
    if plan["Node Type"] in ("Sort", "Incremental Sort") and any(
        _unlimited_scan(child) for child in plan.get("Plans", ())
    ):
        bad.append(f"Sort on {plan.get('Sort Key')}")
    for child in plan.get("Plans", ()):
        bad.extend(_unbounded_sorts(child))
    return bad


def _unlimited_scan(plan: dict[str, Any]) -> bool:
    if plan["Node Type"] == "Limit" or plan.get("Index Name") in _LIVE_WORK:
        return False
    conditions = plan.get("Index Cond", "") + plan.get("Recheck Cond", "")
    if any(term in conditions for term in _LIVE_STATUS):
        return False  # an index range of live (runnable) rows only
    if plan.get("Relation Name") == "executions":
        return True
    return any(_unlimited_scan(child) for child in plan.get("Plans", ()))


async def _explain(conn: psycopg.AsyncConnection[Any], query: str, params: Any) -> dict[str, Any]:
    cur = await conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(query), params)  # type: ignore[arg-type]
    row = await cur.fetchone()
    assert row is not None
    doc = row[0] if not isinstance(row[0], str | bytes) else orjson.loads(row[0])
    return doc[0]["Plan"]  # type: ignore[no-any-return]


def _check(plan: dict[str, Any], what: str) -> None:
    nodes = _nodes(plan)
    seq = [
        n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "executions"
    ]
    assert not seq, f"{what}: full scan of executions\n{orjson.dumps(plan).decode()}"
    sorts = _unbounded_sorts(plan)
    assert not sorts, f"{what}: sorts unbounded rows {sorts}\n{orjson.dumps(plan).decode()}"
    scans = [n for n in nodes if n.get("Relation Name") == "executions"]
    # Bitmap heap scans are index-driven (their child is a Bitmap Index Scan).
    assert scans and all("Index" in n["Node Type"] or "Bitmap" in n["Node Type"] for n in scans), (
        what
    )


@pytest.fixture
async def analyzed(make_store: Any, postgres_dsn: str, schema: str) -> Any:
    store = await make_store()
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        await conn.execute(_FILL, {"t0": NOW - timedelta(days=5), "now": NOW, "rows": ROWS})  # type: ignore[arg-type]
        await conn.execute("ANALYZE executions")
        yield conn
    await store.close()


async def test_periodic_queries_use_partial_indexes(analyzed: psycopg.AsyncConnection[Any]) -> None:
    params = {"now": NOW, "limit": 100, "before": NOW - timedelta(minutes=5),
              "owner": "w", "expires": NOW, "start": True}  # fmt: skip
    params |= {"flow_ids": ["f1", "f2"], "flow_versions": ["1.0.0", "1.0.0"]}
    for name in ("DUE", "STALE", "CLAIM", "CLAIM_OF_FLOWS", "RUNNABLE_BY_FLOW"):
        query = getattr(q, name)
        if name.startswith("CLAIM"):  # an UPDATE: explain its row-picking part
            query = query[: query.index("UPDATE executions e")] + "SELECT * FROM picked"
        _check(await _explain(analyzed, query, params), name)


LISTINGS = [
    ExecutionQuery(),
    ExecutionQuery(status=[ExecutionStatus.WAITING]),
    ExecutionQuery(status=[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED]),
    ExecutionQuery(flow_id="f3"),
    ExecutionQuery(flow_id="f3", status=[ExecutionStatus.WAITING]),
    ExecutionQuery(tenant_id="t7"),
    ExecutionQuery(tenant_id="t10", status=[ExecutionStatus.COMPLETED]),
    ExecutionQuery(tenant_id="t7", flow_id="f7"),
    ExecutionQuery(correlation_id="c1"),
    ExecutionQuery(parent_execution_id="p5", status=[ExecutionStatus.WAITING]),
    ExecutionQuery(created_after=NOW - timedelta(days=4), created_before=NOW - timedelta(days=2)),
    ExecutionQuery(flow_id="f3", cursor=encode_cursor(NOW - timedelta(days=3), "e00050000")),
]


async def test_listings_read_an_index_in_order(analyzed: psycopg.AsyncConnection[Any]) -> None:
    # One test for every listing: filling and analysing the table is the slow part.
    for query in LISTINGS:
        text, params = list_sql(query)
        _check(await _explain(analyzed, text, params), repr(query))

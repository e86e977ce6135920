"""Bytes per execution: ``python -m bench.scale_bytes [N]`` (default 2000).

Runs N executions of two flows through the engine on SQLite and on PostgreSQL, each into
a fresh store, and divides the growth of the store by N:

- ``parked``: one ``delay`` step of 30 days (the execution waits);
- ``ten``: ten no-op steps (the execution completes).

SQLite: pages in use (page count minus free pages, after a WAL checkpoint). PostgreSQL:
the relations of the store's schema after ``VACUUM FULL`` (live data, with the
``executions`` table's fillfactor, 90 since migration 0007). To compare with another
version, run this same file with ``PYTHONPATH`` pointing at that version's ``src``
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tempfile
import uuid
from typing import Any

from flowmonkey import (
    Engine,
    EngineOptions,
    Flow,
    FlowRegistry,
    HandlerRegistry,
    Result,
    SqliteStore,
    handler,
)

PG = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")


@handler("noop")
async def noop(ctx: Any) -> Result:
    """A step that does nothing."""
    return Result.success()


def _flows() -> list[Flow]:
    parked = Flow.from_dict({
        "id": "parked", "version": "1.0.0", "initialStepId": "w",
        "steps": {"w": {"id": "w", "type": "delay", "config": {"duration": "30d"}}},
    })  # fmt: skip
    steps = {
        f"s{i}": {"id": f"s{i}", "type": "noop",
                  "transitions": {"onSuccess": f"s{i + 1}" if i < 9 else None}}
        for i in range(10)
    }  # fmt: skip
    ten = Flow.from_dict({"id": "ten", "version": "1.0.0", "initialStepId": "s0", "steps": steps})
    return [parked, ten]


async def _fill(store: Any, flow_id: str, count: int) -> None:
    registry = HandlerRegistry()
    registry.register(noop)
    options = EngineOptions(execution_timeout=None)
    async with Engine(store, registry, FlowRegistry(_flows()), options=options) as engine:
        for n in range(count):
            await engine.start(flow_id, {"order": n})


def _sqlite_bytes(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


async def _pg_bytes(schema: str) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(PG, autocommit=True) as conn:
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute("VACUUM FULL")
        row = await (await conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", [schema],
        )).fetchone()  # fmt: skip
        return int(row[0]) if row else 0


async def main(count: int) -> None:
    from flowmonkey.stores.postgres import PostgresStore

    for flow_id in ("parked", "ten"):
        with tempfile.TemporaryDirectory() as folder:
            empty, full = f"{folder}/empty.db", f"{folder}/full.db"
            await _fill(SqliteStore(empty, synchronous="OFF"), flow_id, 0)
            await _fill(SqliteStore(full, synchronous="OFF"), flow_id, count)
            lite = (_sqlite_bytes(full) - _sqlite_bytes(empty)) / count
        schemas = [f"fm_bytes_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        try:
            await _fill(PostgresStore(PG, schema=schemas[0]), flow_id, 0)
            await _fill(PostgresStore(PG, schema=schemas[1]), flow_id, count)
            pg = (await _pg_bytes(schemas[1]) - await _pg_bytes(schemas[0])) / count
        finally:
            import psycopg

            async with await psycopg.AsyncConnection.connect(PG, autocommit=True) as conn:
                for schema in schemas:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        print(f"{flow_id}: SQLite {lite:.0f} B/execution, PostgreSQL {pg:.0f} B/execution")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))

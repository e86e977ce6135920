"""Firing scheduled times in the SQL stores: a time's run record and its execution in
one transaction (``fire_schedule_time``), or many times in ONE transaction
(``fire_schedule_times``).

A worker fires every due time of a claimed batch of schedules at once: each time's run
record and execution are written exactly as one ``fire_schedule_time`` writes them, but
one commit (one fsync on SQLite; on PostgreSQL one pipelined round trip plus COMMIT in
the common case) covers the whole batch. All of a batch is stored or none of it, so a
crash leaves every time of the batch to the next lease holder, which redoes each once.
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from flowmonkey import errors
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution
from flowmonkey.model.schedules import ScheduleRun
from flowmonkey.stores import postgres_queries as pq
from flowmonkey.stores import sqlite_ops as ops
from flowmonkey.stores import sqlite_queries as q
from flowmonkey.stores.postgres_commit import create_statement, idempotency_tenant
from flowmonkey.stores.schedules import RUN_COLUMNS as _RUN_COLS
from flowmonkey.stores.schedules import decode_run as _run

__all__ = [
    "PG_RUN_GET",
    "PG_RUN_INSERT",
    "PG_RUN_UPSERT",
    "SQ_RUN_GET",
    "SQ_RUN_INSERT",
    "SQ_RUN_UPSERT",
    "Fire",
    "pg_dt",
    "pg_fire_many",
    "pg_run_values",
    "sq_fire",
    "sq_fire_many",
    "sq_run_values",
]

Fire = tuple[ScheduleRun, Execution | None, Sequence[Event]]
"""One scheduled time to fire: its run record, its execution (``None`` unless the run
is ``started``) and the execution's events."""

# -- SQLite -------------------------------------------------------------------------------

SQ_RUN_INSERT = f"INSERT OR IGNORE INTO schedule_runs ({_RUN_COLS}) VALUES (?, ?, ?, ?, ?, ?)"
SQ_RUN_UPSERT = f"INSERT OR REPLACE INTO schedule_runs ({_RUN_COLS}) VALUES (?, ?, ?, ?, ?, ?)"
SQ_RUN_GET = f"SELECT {_RUN_COLS} FROM schedule_runs WHERE schedule_id = ? AND scheduled_for = ?"


def sq_run_values(run: ScheduleRun) -> tuple[Any, ...]:
    """Column values of a run record (SQLite)."""
    return (
        run.schedule_id,
        q.to_us(run.scheduled_for),
        q.to_us(run.fired_at),
        run.outcome,
        run.execution_id,
        run.reason,
    )


def sq_fire(
    conn: sqlite3.Connection,
    run: ScheduleRun,
    execution: Execution | None,
    events: Sequence[Event],
    state: Any,
) -> tuple[ScheduleRun, bool]:
    """Record ``run`` and create ``execution`` in the caller's transaction."""
    if conn.execute(SQ_RUN_INSERT, sq_run_values(run)).rowcount == 0:
        row = conn.execute(SQ_RUN_GET, (run.schedule_id, q.to_us(run.scheduled_for))).fetchone()
        return _run(row, q.opt_dt), False
    if execution is None:
        return run, False
    stored, created = ops.create(conn, execution, events, state)
    if not created:  # an unexpired execution holds the key: the run points at it
        run = replace(run, execution_id=stored.id)
        conn.execute(SQ_RUN_UPSERT, sq_run_values(run))
    return run, created


def sq_fire_many(
    conn: sqlite3.Connection, items: Sequence[tuple[Fire, Any]]
) -> builtins.list[tuple[ScheduleRun, bool]]:
    """``sq_fire`` of each ``(fire, state params)`` in the caller's transaction, in order."""
    return [sq_fire(conn, run, ex, events, state) for (run, ex, events), state in items]


# -- PostgreSQL ---------------------------------------------------------------------------

PG_RUN_INSERT = (
    f"INSERT INTO schedule_runs ({_RUN_COLS}) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
PG_RUN_UPSERT = (
    f"INSERT INTO schedule_runs ({_RUN_COLS}) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (schedule_id, scheduled_for) DO UPDATE SET fired_at = EXCLUDED.fired_at, "
    "outcome = EXCLUDED.outcome, execution_id = EXCLUDED.execution_id, reason = EXCLUDED.reason"
)
_PG_RUNS_INSERT = (
    f"INSERT INTO schedule_runs ({_RUN_COLS}) SELECT * FROM unnest(%s::text[], "
    "%s::timestamptz[], %s::timestamptz[], %s::text[], %s::text[], %s::text[]) "
    "ON CONFLICT DO NOTHING RETURNING schedule_id, scheduled_for"
)
PG_RUN_GET = f"SELECT {_RUN_COLS} FROM schedule_runs WHERE schedule_id = %s AND scheduled_for = %s"


def pg_dt(value: Any) -> datetime | None:
    """A PostgreSQL timestamptz in UTC (``None`` stays)."""
    return value if value is None else value.astimezone(UTC)


def pg_run_values(run: ScheduleRun) -> builtins.list[Any]:
    """Column values of a run record (PostgreSQL)."""
    return [
        run.schedule_id,
        run.scheduled_for,
        run.fired_at,
        run.outcome,
        run.execution_id,
        run.reason,
    ]


def _created(row: Any) -> bool:
    return row is not None and row[0] in (True, "t", b"t")


async def _pipelined(
    conn: Any, items: Sequence[Fire], statements: Sequence[Any]
) -> tuple[builtins.list[bool], builtins.list[Any]]:
    """BEGIN, then every run insert and every given execution insert, in one round trip;
    whether each run was new and each insert's row (the transaction stays open)."""
    failure: Exception | None = None
    recorded: builtins.list[bool] = []
    inserted: builtins.list[Any] = []
    async with conn.pipeline() as pipeline:
        try:
            await conn.execute(pq.BEGIN)
            # One insert for all the run records (fixed text: parsed and prepared once),
            # returning the keys of those that were new.
            columns = list(zip(*(pg_run_values(run) for run, _, _ in items), strict=True))
            run_cur = await conn.execute(_PG_RUNS_INSERT, [list(c) for c in columns])
            create_curs = [
                None if st is None else await conn.execute(st[0], st[1]) for st in statements
            ]
            await pipeline.sync()
            new = {(row[0], row[1]) for row in await run_cur.fetchall()}
            recorded = [(run.schedule_id, run.scheduled_for) in new for run, _, _ in items]
            inserted = [None if cur is None else await cur.fetchone() for cur in create_curs]
        except Exception as exc:  # psycopg.Error: drain the aborted pipeline
            failure = exc
            with contextlib.suppress(Exception):
                await pipeline.sync()
    if failure is not None:
        raise failure
    return recorded, inserted


async def pg_fire_many(
    conn: Any, items: Sequence[Fire], channel: str | None
) -> builtins.list[tuple[ScheduleRun, bool]]:
    """Fire ``items`` in one transaction on ``conn`` (a pooled psycopg connection).

    Common case, one round trip: BEGIN, every run insert and every execution insert are
    pipelined. A run insert that finds its time already recorded means that time was
    handled before, and its execution insert must leave nothing behind: it writes nothing
    while the idempotency key still names the first execution. Only when such an insert
    did write (the key had expired) is the transaction rolled back and redone without
    the executions of the times recorded before.
    """
    statements: builtins.list[Any] = []
    for _, execution, events in items:
        if execution is None:
            statements.append(None)
            continue
        try:
            statements.append(create_statement(execution, events, channel)[0])
        except orjson.JSONEncodeError as exc:
            raise errors.StoreError(f"execution {execution.id} is not JSON: {exc}") from exc
    try:
        while True:
            recorded, inserted = await _pipelined(conn, items, statements)
            stale = [not rec and _created(ins) for rec, ins in zip(recorded, inserted, strict=True)]
            if not any(stale):
                break
            await conn.execute(b"ROLLBACK")
            statements = [None if bad else st for st, bad in zip(statements, stale, strict=True)]
        out: builtins.list[tuple[ScheduleRun, bool]] = []
        for (run, execution, _), rec, ins in zip(items, recorded, inserted, strict=True):
            if not rec:  # handled before: answer with the first run
                cur = await conn.execute(PG_RUN_GET, [run.schedule_id, run.scheduled_for])
                row = await cur.fetchone()
                assert row is not None
                out.append((_run(row, pg_dt), False))
                continue
            created = _created(ins)
            if execution is not None and not created:
                # An unexpired execution holds the key: the run points at that one.
                cur = await conn.execute(
                    pq.IDEMPOTENCY_HOLDER,
                    {"tenant_key": idempotency_tenant(execution),
                     "flow_id": execution.flow_id, "idem_key": execution.idempotency_key},
                )  # fmt: skip
                holder = await cur.fetchone()
                if holder is None:
                    raise errors.StoreError("idempotency key held by a missing execution")
                run = replace(run, execution_id=holder[0])
                await conn.execute(PG_RUN_UPSERT, pg_run_values(run))
            out.append((run, created))
        await conn.execute(pq.COMMIT)
        return out
    except BaseException:
        # Leave the connection idle for the pool (rollback() also resets psycopg's
        # prepared statements after an aborted pipeline); the error is what matters.
        if not conn.closed:
            with contextlib.suppress(Exception):
                await conn.rollback()
        raise

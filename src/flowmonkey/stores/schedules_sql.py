"""Schedule storage of ``SqliteStore`` and ``PostgresStore`` (see ``schedules.py``)."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution
from flowmonkey.model.schedules import Schedule, ScheduleRun
from flowmonkey.stores import sqlite_queries as q
from flowmonkey.stores.cursors import by_id_page
from flowmonkey.stores.schedule_fires import PG_RUN_GET as _PG_RUN_GET
from flowmonkey.stores.schedule_fires import PG_RUN_INSERT as _PG_RUN_INSERT
from flowmonkey.stores.schedule_fires import PG_RUN_UPSERT as _PG_RUN_UPSERT
from flowmonkey.stores.schedule_fires import SQ_RUN_GET as _SQ_RUN_GET
from flowmonkey.stores.schedule_fires import SQ_RUN_INSERT as _SQ_RUN_INSERT
from flowmonkey.stores.schedule_fires import SQ_RUN_UPSERT as _SQ_RUN_UPSERT
from flowmonkey.stores.schedule_fires import Fire, pg_fire_many, sq_fire, sq_fire_many
from flowmonkey.stores.schedule_fires import pg_dt as _pg_dt
from flowmonkey.stores.schedule_fires import pg_run_values as _pg_run_values
from flowmonkey.stores.schedule_fires import sq_run_values as _sq_run_values
from flowmonkey.stores.schedules import RUN_COLUMNS as _RUN_COLS
from flowmonkey.stores.schedules import SCHEDULE_COLUMNS as _COLS
from flowmonkey.stores.schedules import decode_run as _run
from flowmonkey.stores.schedules import decode_schedule as _schedule
from flowmonkey.stores.schedules import encode_spec as _spec
from flowmonkey.stores.schedules import exists_error as _exists

__all__ = ["PostgresSchedules", "SqliteSchedules"]


# -- SQLite -------------------------------------------------------------------------------

_SQ_INSERT = f"INSERT INTO schedules ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SQ_SAVE = (
    "UPDATE schedules SET tenant_id = ?, spec = ?, paused = ?, next_fire_at = ?, "
    "last_execution_id = ?, buffered_for = ?, updated_at = ?, lease_owner = NULL, "
    "lease_expires_at = NULL WHERE id = ?"
)
_SQ_GET = f"SELECT {_COLS} FROM schedules WHERE id = ?"
_SQ_LIST = f"SELECT {_COLS} FROM schedules WHERE 1 = 1"
_SQ_DUE = (
    f"SELECT {_COLS} FROM schedules WHERE paused = 0 "
    "AND (next_fire_at <= ? OR buffered_for IS NOT NULL) "
    "AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at <= ?) ORDER BY id LIMIT ?"
)
_SQ_ONE_FREE = (
    f"SELECT {_COLS} FROM schedules WHERE id = ? "
    "AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at <= ?)"
)
_SQ_LEASE = "UPDATE schedules SET lease_owner = ?, lease_expires_at = ? WHERE id = ?"
_SQ_RELEASE = (
    "UPDATE schedules SET next_fire_at = ?, last_execution_id = ?, buffered_for = ?, "
    "lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?"
)
_SQ_RUNS = (
    f"SELECT {_RUN_COLS} FROM schedule_runs WHERE schedule_id = ? "
    "ORDER BY scheduled_for DESC LIMIT ?"
)
_SQ_RUNS_BEFORE = (
    f"SELECT {_RUN_COLS} FROM schedule_runs WHERE schedule_id = ? AND scheduled_for < ? "
    "ORDER BY scheduled_for DESC LIMIT ?"
)
_SQ_NEXT = "SELECT MIN(next_fire_at) FROM schedules WHERE paused = 0"


def _sq_row(row: tuple[Any, ...]) -> Schedule:
    return _schedule(row, q.opt_dt)


def _sq_values(s: Schedule) -> tuple[Any, ...]:
    return (
        s.id,
        s.tenant_id,
        _spec(s),
        int(s.paused),
        q.opt_us(s.next_fire_at),
        s.last_execution_id,
        q.opt_us(s.buffered_for),
        q.to_us(s.created_at),
        q.to_us(s.updated_at),
    )


def _sq_create(conn: sqlite3.Connection, schedule: Schedule) -> None:
    try:
        conn.execute(_SQ_INSERT, _sq_values(schedule))
    except sqlite3.IntegrityError:
        raise _exists(schedule.id) from None


def _sq_save(conn: sqlite3.Connection, s: Schedule) -> bool:
    values = _sq_values(s)
    cur = conn.execute(_SQ_SAVE, (*values[1:7], values[8], s.id))
    return cur.rowcount == 1


def _sq_get(conn: sqlite3.Connection, schedule_id: str) -> Schedule | None:
    row = conn.execute(_SQ_GET, (schedule_id,)).fetchone()
    return None if row is None else _sq_row(row)


def _sq_list(
    conn: sqlite3.Connection, tenant_id: str | None, after: str | None, limit: int | None
) -> builtins.list[Schedule]:
    sql, params = by_id_page(_SQ_LIST, [], "?", tenant_id=tenant_id, after=after, limit=limit)
    return [_sq_row(row) for row in conn.execute(sql, params).fetchall()]


def _sq_delete(conn: sqlite3.Connection, schedule_id: str) -> bool:
    conn.execute("DELETE FROM schedule_runs WHERE schedule_id = ?", (schedule_id,))
    return conn.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,)).rowcount == 1


def _sq_claim(
    conn: sqlite3.Connection,
    owner: str,
    now: datetime,
    lease_for: timedelta,
    limit: int,
    schedule_id: str | None,
) -> builtins.list[Schedule]:
    now_us = q.to_us(now)
    if schedule_id is None:
        rows = conn.execute(_SQ_DUE, (now_us, owner, now_us, limit)).fetchall()
    else:
        rows = conn.execute(_SQ_ONE_FREE, (schedule_id, owner, now_us)).fetchall()
    expires = q.to_us(now + lease_for)
    for row in rows:
        conn.execute(_SQ_LEASE, (owner, expires, row[0]))
    return [_sq_row(row) for row in rows]


def _sq_release(conn: sqlite3.Connection, s: Schedule, owner: str) -> bool:
    params = (q.opt_us(s.next_fire_at), s.last_execution_id, q.opt_us(s.buffered_for), s.id, owner)
    return conn.execute(_SQ_RELEASE, params).rowcount == 1


def _sq_record(conn: sqlite3.Connection, run: ScheduleRun) -> ScheduleRun:
    conn.execute(_SQ_RUN_INSERT, _sq_run_values(run))
    row = conn.execute(_SQ_RUN_GET, (run.schedule_id, q.to_us(run.scheduled_for))).fetchone()
    return _run(row, q.opt_dt)


def _sq_release_many(conn: sqlite3.Connection, schedules: Sequence[Schedule], owner: str) -> int:
    return sum(_sq_release(conn, s, owner) for s in schedules)


def _sq_update_run(conn: sqlite3.Connection, run: ScheduleRun) -> None:
    conn.execute(_SQ_RUN_UPSERT, _sq_run_values(run))


def _sq_runs(
    conn: sqlite3.Connection, schedule_id: str, limit: int, before: datetime | None
) -> builtins.list[ScheduleRun]:
    if before is None:
        rows = conn.execute(_SQ_RUNS, (schedule_id, limit))
    else:
        rows = conn.execute(_SQ_RUNS_BEFORE, (schedule_id, q.to_us(before), limit))
    return [_run(row, q.opt_dt) for row in rows]


def _sq_next(conn: sqlite3.Connection) -> datetime | None:
    return q.opt_dt(conn.execute(_SQ_NEXT).fetchone()[0])


class SqliteSchedules:
    """Schedules of ``SqliteStore`` (each call one transaction)."""

    if TYPE_CHECKING:
        _tx: Callable[..., Awaitable[Any]]

    async def create_schedule(self, schedule: Schedule) -> None:
        """Store a new schedule (``AlreadyExists`` if the id is taken)."""
        await self._tx(True, _sq_create, schedule)

    async def save_schedule(self, schedule: Schedule) -> bool:
        """Replace a schedule (definition and state) and drop its lease."""
        done: bool = await self._tx(True, _sq_save, schedule)
        return done

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """One schedule, or ``None``."""
        found: Schedule | None = await self._tx(False, _sq_get, schedule_id)
        return found

    async def list_schedules(
        self, *, tenant_id: str | None = None, after: str | None = None, limit: int | None = None
    ) -> builtins.list[Schedule]:
        """Schedules by id (of one tenant when given), after ``after``, at most ``limit``."""
        found: builtins.list[Schedule] = await self._tx(False, _sq_list, tenant_id, after, limit)
        return found

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule and its runs."""
        done: bool = await self._tx(True, _sq_delete, schedule_id)
        return done

    async def claim_schedules(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        limit: int,
        schedule_id: str | None = None,
    ) -> builtins.list[Schedule]:
        """Lease due schedules to ``owner`` (or the one ``schedule_id``, due or not)."""
        found: builtins.list[Schedule] = await self._tx(
            True, _sq_claim, owner, now, lease_for, limit, schedule_id
        )
        return found

    async def release_schedule(self, schedule: Schedule, *, owner: str) -> bool:
        """Write the firing state of a leased schedule and drop the lease (fenced)."""
        done: bool = await self._tx(True, _sq_release, schedule, owner)
        return done

    async def record_schedule_run(self, run: ScheduleRun) -> ScheduleRun:
        """Record a run unless that time is recorded; returns the stored run."""
        stored: ScheduleRun = await self._tx(True, _sq_record, run)
        return stored

    async def update_schedule_run(self, run: ScheduleRun) -> None:
        """Overwrite the run of ``(schedule_id, scheduled_for)`` (a buffered run started)."""
        await self._tx(True, _sq_update_run, run)

    async def fire_schedule_time(
        self, run: ScheduleRun, execution: Execution | None, events: Sequence[Event] = ()
    ) -> tuple[ScheduleRun, bool]:
        """Record ``run`` and create its execution in one transaction (see ``Store``)."""
        state = None if execution is None else q.state_params(execution)
        found: tuple[ScheduleRun, bool] = await self._tx(
            True, sq_fire, run, execution, events, state
        )
        return found

    async def fire_schedule_times(
        self, items: Sequence[Fire]
    ) -> builtins.list[tuple[ScheduleRun, bool]]:
        """``fire_schedule_time`` of each, in ONE transaction (see ``Store``)."""
        if not items:
            return []
        prepared = [(item, None if item[1] is None else q.state_params(item[1])) for item in items]
        found: builtins.list[tuple[ScheduleRun, bool]] = await self._tx(
            True, sq_fire_many, prepared
        )
        return found

    async def release_schedules(self, schedules: Sequence[Schedule], *, owner: str) -> int:
        """``release_schedule`` of many in one transaction; how many were still held."""
        done: int = await self._tx(True, _sq_release_many, schedules, owner)
        return done

    async def list_schedule_runs(
        self, schedule_id: str, *, limit: int = 50, before: datetime | None = None
    ) -> builtins.list[ScheduleRun]:
        """Runs of one schedule, newest scheduled time first (before ``before``)."""
        runs: builtins.list[ScheduleRun] = await self._tx(
            False, _sq_runs, schedule_id, limit, before
        )
        return runs

    async def next_schedule_time(self) -> datetime | None:
        """The earliest ``next_fire_at`` of unpaused schedules (``None``: none)."""
        found: datetime | None = await self._tx(False, _sq_next)
        return found


# -- PostgreSQL ---------------------------------------------------------------------------

_PG_INSERT = (
    f"INSERT INTO schedules ({_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING RETURNING id"
)
_PG_SAVE = (
    "UPDATE schedules SET tenant_id = %s, spec = %s, paused = %s, next_fire_at = %s, "
    "last_execution_id = %s, buffered_for = %s, updated_at = %s, lease_owner = NULL, "
    "lease_expires_at = NULL WHERE id = %s RETURNING id"
)
_PG_GET = f"SELECT {_COLS} FROM schedules WHERE id = %s"
_PG_LIST = f"SELECT {_COLS} FROM schedules WHERE TRUE"
# One statement: pick the due rows nobody else holds (SKIP LOCKED: concurrent claimers
# take different rows instead of queueing) and lease them.
_PG_CLAIM = (
    "UPDATE schedules s SET lease_owner = %(owner)s, lease_expires_at = %(expires)s "
    "FROM (SELECT id FROM schedules WHERE paused = 0 "
    "AND (next_fire_at <= %(now)s OR buffered_for IS NOT NULL) "
    "AND (lease_owner IS NULL OR lease_owner = %(owner)s OR lease_expires_at <= %(now)s) "
    "ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due WHERE s.id = due.id "
    "RETURNING " + ", ".join(f"s.{c.strip()}" for c in _COLS.split(","))
)
_PG_CLAIM_ONE = (
    "UPDATE schedules SET lease_owner = %(owner)s, lease_expires_at = %(expires)s "
    "WHERE id = %(id)s "
    "AND (lease_owner IS NULL OR lease_owner = %(owner)s OR lease_expires_at <= %(now)s) "
    f"RETURNING {_COLS}"
)
_PG_RELEASE = (
    "UPDATE schedules SET next_fire_at = %s, last_execution_id = %s, buffered_for = %s, "
    "lease_owner = NULL, lease_expires_at = NULL WHERE id = %s AND lease_owner = %s RETURNING id"
)
# One statement (atomic, one round trip) for a whole batch, fenced per schedule.
_PG_RELEASE_MANY = (
    "UPDATE schedules s SET next_fire_at = v.next_fire_at, "
    "last_execution_id = v.last_execution_id, buffered_for = v.buffered_for, "
    "lease_owner = NULL, lease_expires_at = NULL "
    "FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::timestamptz[]) "
    "AS v(id, next_fire_at, last_execution_id, buffered_for) "
    "WHERE s.id = v.id AND s.lease_owner = %s RETURNING s.id"
)
_PG_RUNS = (
    f"SELECT {_RUN_COLS} FROM schedule_runs WHERE schedule_id = %s "
    "ORDER BY scheduled_for DESC LIMIT %s"
)
_PG_RUNS_BEFORE = (
    f"SELECT {_RUN_COLS} FROM schedule_runs WHERE schedule_id = %s AND scheduled_for < %s "
    "ORDER BY scheduled_for DESC LIMIT %s"
)
_PG_NEXT = "SELECT MIN(next_fire_at) FROM schedules WHERE paused = 0"


def _pg_row(row: tuple[Any, ...]) -> Schedule:
    return _schedule(row, _pg_dt)


def _pg_values(s: Schedule) -> builtins.list[Any]:
    return [
        s.id,
        s.tenant_id,
        _spec(s),
        int(s.paused),
        s.next_fire_at,
        s.last_execution_id,
        s.buffered_for,
        s.created_at,
        s.updated_at,
    ]


class PostgresSchedules:
    """Schedules of ``PostgresStore`` (single autocommit statements)."""

    if TYPE_CHECKING:

        @property
        def _notify_channel(self) -> str | None: ...

        async def _fetchall(self, query: str, params: Any = None) -> builtins.list[Any]: ...

        def _read(self) -> Any: ...

    async def create_schedule(self, schedule: Schedule) -> None:
        """Store a new schedule (``AlreadyExists`` if the id is taken)."""
        if not await self._fetchall(_PG_INSERT, _pg_values(schedule)):
            raise _exists(schedule.id)

    async def save_schedule(self, schedule: Schedule) -> bool:
        """Replace a schedule (definition and state) and drop its lease."""
        values = _pg_values(schedule)
        return bool(await self._fetchall(_PG_SAVE, [*values[1:7], values[8], schedule.id]))

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """One schedule, or ``None``."""
        rows = await self._fetchall(_PG_GET, [schedule_id])
        return _pg_row(rows[0]) if rows else None

    async def list_schedules(
        self, *, tenant_id: str | None = None, after: str | None = None, limit: int | None = None
    ) -> builtins.list[Schedule]:
        """Schedules by id (of one tenant when given), after ``after``, at most ``limit``."""
        sql, params = by_id_page(_PG_LIST, [], "%s", tenant_id=tenant_id, after=after, limit=limit)
        return [_pg_row(row) for row in await self._fetchall(sql, params)]

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule and its runs."""
        await self._fetchall(
            "DELETE FROM schedule_runs WHERE schedule_id = %s RETURNING schedule_id", [schedule_id]
        )
        rows = await self._fetchall(
            "DELETE FROM schedules WHERE id = %s RETURNING id", [schedule_id]
        )
        return bool(rows)

    async def claim_schedules(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        limit: int,
        schedule_id: str | None = None,
    ) -> builtins.list[Schedule]:
        """Lease due schedules to ``owner`` (or the one ``schedule_id``, due or not)."""
        params = {
            "owner": owner,
            "now": now,
            "expires": now + lease_for,
            "limit": limit,
            "id": schedule_id,
        }
        rows = await self._fetchall(_PG_CLAIM if schedule_id is None else _PG_CLAIM_ONE, params)
        return sorted((_pg_row(row) for row in rows), key=lambda s: s.id)

    async def release_schedule(self, schedule: Schedule, *, owner: str) -> bool:
        """Write the firing state of a leased schedule and drop the lease (fenced)."""
        params = [
            schedule.next_fire_at,
            schedule.last_execution_id,
            schedule.buffered_for,
            schedule.id,
            owner,
        ]
        return bool(await self._fetchall(_PG_RELEASE, params))

    async def record_schedule_run(self, run: ScheduleRun) -> ScheduleRun:
        """Record a run unless that time is recorded; returns the stored run."""
        rows = await self._fetchall(f"{_PG_RUN_INSERT} RETURNING {_RUN_COLS}", _pg_run_values(run))
        if not rows:  # recorded before: the first record wins
            rows = await self._fetchall(_PG_RUN_GET, [run.schedule_id, run.scheduled_for])
        return _run(rows[0], _pg_dt)

    async def update_schedule_run(self, run: ScheduleRun) -> None:
        """Overwrite the run of ``(schedule_id, scheduled_for)`` (a buffered run started)."""
        await self._fetchall(_PG_RUN_UPSERT + " RETURNING schedule_id", _pg_run_values(run))

    async def fire_schedule_time(
        self, run: ScheduleRun, execution: Execution | None, events: Sequence[Event] = ()
    ) -> tuple[ScheduleRun, bool]:
        """Record ``run`` and create its execution in one transaction (see ``Store``)."""
        [found] = await self.fire_schedule_times([(run, execution, events)])
        return found

    async def fire_schedule_times(
        self, items: Sequence[Fire]
    ) -> builtins.list[tuple[ScheduleRun, bool]]:
        """``fire_schedule_time`` of each, in ONE transaction (see ``Store``)."""
        if not items:
            return []
        async with self._read() as conn:
            return await pg_fire_many(conn, items, self._notify_channel)

    async def release_schedules(self, schedules: Sequence[Schedule], *, owner: str) -> int:
        """``release_schedule`` of many in one statement; how many were still held."""
        if not schedules:
            return 0
        columns = [
            [s.id for s in schedules],
            [s.next_fire_at for s in schedules],
            [s.last_execution_id for s in schedules],
            [s.buffered_for for s in schedules],
            owner,
        ]
        return len(await self._fetchall(_PG_RELEASE_MANY, columns))

    async def list_schedule_runs(
        self, schedule_id: str, *, limit: int = 50, before: datetime | None = None
    ) -> builtins.list[ScheduleRun]:
        """Runs of one schedule, newest scheduled time first (before ``before``)."""
        if before is None:
            rows = await self._fetchall(_PG_RUNS, [schedule_id, limit])
        else:
            rows = await self._fetchall(_PG_RUNS_BEFORE, [schedule_id, before, limit])
        return [_run(row, _pg_dt) for row in rows]

    async def next_schedule_time(self) -> datetime | None:
        """The earliest ``next_fire_at`` of unpaused schedules (``None``: none)."""
        rows = await self._fetchall(_PG_NEXT)
        return _pg_dt(rows[0][0]) if rows else None

"""``PostgresStore``: the scale-out store (any number of worker processes, one database).

Layout and costs (schema in ``sql/postgres/``):

- Every method is one READ COMMITTED transaction on a pooled autocommit connection. A
  step's commit (fenced header UPDATE, changed context keys, history, events) is ONE
  statement of data-modifying CTEs: one round trip, one WAL flush, and a lost lease
  aborts it server-side (``fm_check``). Multi-statement transactions (claim, acquire,
  ``commit_many``, commits with tokens/tasks) write ``BEGIN``/``COMMIT`` themselves in
  psycopg pipeline mode so they too cost as few round trips as their reads allow.
- Claiming uses ``FOR UPDATE SKIP LOCKED``: concurrent claimers take disjoint rows.
- Wake-ups: the store sends ``pg_notify`` inside the transaction that makes an execution
  runnable for *other* processes (created pending, released runnable). A NOTIFY is
  delivered only if that transaction commits, which is exactly the promise we want; it is
  never sent on ordinary step commits because NOTIFY serialises committing transactions
  on a global lock. Listeners use ``PostgresWakeSignaler``; polling stays the fallback.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from psycopg import errors as pg_errors

from flowmonkey import errors
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.stores import compact, postgres_bulk
from flowmonkey.stores import postgres_queries as q
from flowmonkey.stores import purge as purge_rules
from flowmonkey.stores.base import (
    Acquired,
    ExecutionQuery,
    Lease,
    Page,
    PurgeBatch,
    PurgeQuery,
    StepCommit,
    StoredFlow,
    TaskQuery,
)
from flowmonkey.stores.cursors import decode_cursor, encode_cursor
from flowmonkey.stores.documents import PostgresDocuments
from flowmonkey.stores.keys import PostgresKeys
from flowmonkey.stores.postgres_base import PostgresBase
from flowmonkey.stores.postgres_commit import (
    commit_statements,
    create_statement,
    idempotency_tenant,
    settle_created,
)
from flowmonkey.stores.postgres_purge import purge_others, purge_plain
from flowmonkey.stores.postgres_wake import PostgresWakeSignaler
from flowmonkey.stores.schedules_sql import PostgresSchedules
from flowmonkey.stores.tables import PostgresTables
from flowmonkey.versions import semver_key

_TERMINAL = frozenset(("completed", "failed", "cancelled"))

__all__ = ["PostgresStore", "PostgresWakeSignaler", "list_sql"]


def list_sql(query: ExecutionQuery) -> tuple[str, dict[str, Any]]:
    """The page query of ``query`` and its parameters (public for the query-plan test)."""
    where: builtins.list[str] = []
    params: dict[str, Any] = {"limit": query.limit + 1}
    for column in ("flow_id", "tenant_id", "correlation_id", "parent_execution_id"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = %({column})s")
            params[column] = value
    if query.created_after is not None:
        where.append("created_at >= %(created_after)s")
        params["created_after"] = query.created_after
    if query.created_before is not None:
        where.append("created_at < %(created_before)s")
        params["created_before"] = query.created_before
    if query.cursor:
        created, ident = decode_cursor(query.cursor)
        where.append("(created_at, id) < (%(cursor_at)s, %(cursor_id)s)")
        params["cursor_at"], params["cursor_id"] = created, ident
    filters = "".join(f" AND {term}" for term in where)
    statuses = dict.fromkeys(ExecutionStatus(s) for s in query.status or ExecutionStatus)
    arms = "\nUNION ALL\n".join(
        q.LIST_ARM.format(status=status.value, where=filters) for status in statuses
    )
    return q.LIST_PAGE.format(keys=q.LIST_KEYS.format(arms=arms)), params


class PostgresStore(
    PostgresBase, PostgresKeys, PostgresSchedules, PostgresDocuments, PostgresTables
):
    """``Store`` on PostgreSQL (psycopg 3 + psycopg_pool). See the module docstring.

    Args:
        dsn: libpq connection string or ``postgresql://`` URL (or use ``from_url``).
        schema: schema holding every table (created on first ``initialize``).
        min_size, max_size: connection pool bounds.
        auto_migrate: migrate an older schema on ``initialize`` (else refuse).
        connect_timeout: seconds before an unreachable server is reported.
        pool_timeout: seconds to wait for a free pooled connection.
        notify: send ``pg_notify`` when an execution becomes runnable for others.
        channel: NOTIFY channel (default ``flowmonkey_wake_<schema>``).
    """

    purge_beside_writers = True
    """A purge batch runs on its own connection and locks only the old executions it
    deletes, so live steps never wait for it: ``Engine.purge`` runs its batches back to
    back instead of pacing them around this engine's runs (``engine/retention.py``)."""

    # -- executions -------------------------------------------------------------------------

    async def create(
        self, execution: Execution, events: Sequence[Event] = (), *, lease: Lease | None = None
    ) -> tuple[Execution, bool]:
        """Insert an execution with its context and events (atomic idempotency).

        One statement (one round trip) unless the idempotency key is held, in which case
        the holder is looked up and returned.
        """
        try:
            (query, params), context = create_statement(
                execution, events, self._notify_channel, lease
            )
        except orjson.JSONEncodeError as exc:
            raise errors.StoreError(
                f"execution {execution.id} is not JSON-serialisable: {exc}"
            ) from exc
        try:
            rows = await self._run_one(query, params)
        except errors.StoreError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, pg_errors.UniqueViolation)
                and cause.diag.constraint_name == "executions_pkey"
            ):
                raise errors.StoreError(f'execution id "{execution.id}" already exists') from cause
            raise
        if rows and rows[0][0] == b"t":
            # Stores hand back the execution they were given (``Store.create``), here
            # made exactly what ``get`` loads from the values just encoded.
            return settle_created(execution, params, context), True
        # A new statement (so a new snapshot) sees the holder that made us lose the key.
        holder = await self._fetchall(
            q.IDEMPOTENCY_HOLDER,
            {"tenant_key": idempotency_tenant(execution), "flow_id": execution.flow_id,
             "idem_key": execution.idempotency_key},
        )  # fmt: skip
        found = await self.get(holder[0][0]) if holder else None
        if found is None:  # the holder vanished in between: extremely unlikely
            raise errors.StoreError(
                f"idempotency key {execution.idempotency_key!r} is held by a missing execution"
            )
        return found, False

    async def create_bulk(self, items: Sequence[tuple[Execution, Sequence[Event]]]) -> int:
        """Insert many new executions in one transaction (``postgres_bulk``)."""
        return await postgres_bulk.create_bulk(self, items)

    async def get(self, execution_id: str, *, history: bool = True) -> Execution | None:
        """Return the execution (context included; history when asked) or ``None``."""
        rows = await self._fetchall(q.GET if history else q.GET_NO_HISTORY, [execution_id])
        return q.decode_execution(rows[0]) if rows else None

    async def list(self, query: ExecutionQuery) -> Page[Execution]:
        """A page of executions (no history), newest first (see ``q.LIST_KEYS``)."""
        sql, params = list_sql(query)
        rows = await self._fetchall(sql, params)
        items = [q.decode_execution(r) for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit and items:
            next_cursor = encode_cursor(items[-1].created_at, items[-1].id)
        return Page(items=items, next_cursor=next_cursor)

    async def find_children(self, parent_execution_id: str) -> builtins.list[Execution]:
        """Direct children, oldest first (no history)."""
        rows = await self._fetchall(q.FIND_CHILDREN, [parent_execution_id])
        return [q.decode_execution(r) for r in rows]

    # -- leases and step commits --------------------------------------------------------------

    async def acquire(
        self,
        execution_id: str,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        steal: bool = False,
        start: bool = True,
        failed: bool = False,
    ) -> Acquired:
        """Lease one execution (see ``Store.acquire``)."""
        expires = now + lease_for
        params = {"id": execution_id, "owner": owner, "now": now, "expires": expires,
                  "steal": steal, "start": start, "failed": failed}  # fmt: skip
        async with self._tx() as conn:
            granted = await conn.execute(q.ACQUIRE, params)
            # Read after the UPDATE (which waited for any row lock): this snapshot holds
            # everything the previous lease holder committed.
            loaded = await conn.execute(q.GET, [execution_id])
        # Fetched after the block so BEGIN..COMMIT went out as one pipelined batch.
        grant_row = await granted.fetchone()
        row = await loaded.fetchone()
        if row is None:
            raise errors.ExecutionNotFound(execution_id)
        if grant_row is None:
            return Acquired(execution=q.decode_execution(row), lease=None)
        token, recovered = grant_row
        lease = Lease(execution_id=execution_id, owner=owner, token=token, expires_at=expires)
        return Acquired(execution=q.decode_execution(row), lease=lease, recovered=recovered)

    async def commit(self, lease: Lease, commit: StepCommit) -> None:
        """Apply one step atomically, fenced by ``lease`` (one round trip)."""
        statements = self._commit_statements(lease, commit)
        if len(statements) == 1:  # the common case: one atomic statement, no BEGIN
            await self._run_one(*statements[0])
            return
        async with self._tx() as conn:
            for query, params in statements:
                await conn.execute(query, params)

    def _commit_statements(
        self, lease: Lease, commit: StepCommit
    ) -> builtins.list[tuple[str, Any]]:
        if commit.execution.id != lease.execution_id:
            raise errors.StoreError(
                f"commit for execution {commit.execution.id} under the lease of "
                f"{lease.execution_id}"
            )
        try:
            return commit_statements(
                lease, commit, self._notify_channel, events_channel=self._events_channel
            )
        except orjson.JSONEncodeError as exc:
            raise errors.StoreError(
                f"commit of execution {lease.execution_id} is not JSON-serialisable: {exc}"
            ) from exc

    async def commit_many(
        self, items: Sequence[tuple[Lease, StepCommit]]
    ) -> builtins.list[BaseException | None]:
        """Commit several executions' steps in ONE transaction (group commit).

        Returns one entry per item, in order: ``None`` when committed, else the error
        (``LeaseLost``, ``InvalidResumeToken``, ``StoreError``...). When any item fails,
        the group transaction rolls back and every item is retried on its own, so the
        others still land and each failure is attributed to its item.
        """
        results: builtins.list[BaseException | None] = [None] * len(items)
        batch: builtins.list[tuple[int, builtins.list[tuple[str, Any]]]] = []
        for index, (lease, commit) in enumerate(items):
            try:
                batch.append((index, self._commit_statements(lease, commit)))
            except errors.StoreError as exc:
                results[index] = exc
        if not batch:
            return results
        # Lock rows in a fixed order so two overlapping groups cannot deadlock.
        batch.sort(key=lambda entry: items[entry[0]][0].execution_id)
        try:
            async with self._tx() as conn:
                for _, statements in batch:
                    for query, params in statements:
                        await conn.execute(query, params)
            return results
        except errors.StoreUnavailable:
            raise
        except errors.FlowMonkeyError:
            pass  # someone's lease or token failed: find out whose, one by one
        for index, statements in batch:
            try:
                async with self._tx() as conn:
                    for query, params in statements:
                        await conn.execute(query, params)
            except errors.StoreUnavailable:
                raise
            except errors.FlowMonkeyError as exc:
                results[index] = exc
        return results

    async def heartbeat(self, lease: Lease, *, now: datetime, lease_for: timedelta) -> Lease:
        """Extend a lease; ``LeaseLost`` if it was taken over or released."""
        expires = now + lease_for
        params = {"id": lease.execution_id, "token": lease.token, "owner": lease.owner,
                  "expires": expires}  # fmt: skip
        rows = await self._fetchall(q.HEARTBEAT, params)
        if not rows:
            raise errors.LeaseLost(lease.execution_id)
        return Lease(execution_id=lease.execution_id, owner=lease.owner, token=lease.token,
                     expires_at=expires)  # fmt: skip

    async def release(self, lease: Lease) -> None:
        """Drop a lease (no error if already lost)."""
        params = {"id": lease.execution_id, "token": lease.token, "owner": lease.owner}
        async with self._read() as conn:
            await conn.execute(q.RELEASE, params)

    async def save_checkpoint(self, lease: Lease, checkpoint: dict[str, Any] | None) -> None:
        """Persist ``ctx.checkpoint`` data (fenced; ``LeaseLost``)."""
        try:
            data = orjson.dumps(checkpoint) if checkpoint is not None else None
        except orjson.JSONEncodeError as exc:
            raise errors.StoreError(f"checkpoint is not JSON-serialisable: {exc}") from exc
        params = {"id": lease.execution_id, "token": lease.token, "owner": lease.owner,
                  "checkpoint": data}  # fmt: skip
        if not await self._fetchall(q.SAVE_CHECKPOINT, params):
            raise errors.LeaseLost(lease.execution_id)

    async def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        limit: int,
        flows: Collection[tuple[str, str]] | None = None,
    ) -> builtins.list[Acquired]:
        """Lease up to ``limit`` runnable executions, oldest first (SKIP LOCKED)."""
        if limit <= 0 or (flows is not None and not flows):
            return []
        expires = now + lease_for
        params: dict[str, Any] = {
            "owner": owner, "now": now, "expires": expires, "limit": limit, "start": True
        }  # fmt: skip
        sql = q.CLAIM
        if flows is not None:
            sql = q.CLAIM_OF_FLOWS
            params["flow_ids"] = [k[0] for k in flows]
            params["flow_versions"] = [k[1] for k in flows]
        async with self._tx() as conn:
            cur = await conn.execute(sql, params)
            granted = {
                ident: (token, recovered) for ident, token, recovered in await cur.fetchall()
            }
            loaded = None
            if granted:
                # A second statement, so its snapshot follows the row locks just taken.
                loaded = await conn.execute(q.GET_MANY, [builtins.list(granted)])
        rows = await loaded.fetchall() if loaded is not None else []
        out = []
        for row in rows:
            execution = q.decode_execution(row)
            token, recovered = granted[execution.id]
            lease = Lease(execution_id=execution.id, owner=owner, token=token, expires_at=expires)
            out.append(Acquired(execution=execution, lease=lease, recovered=recovered))
        return out

    async def count_by_status(
        self, *, tenant_id: str | None = None, flow_id: str | None = None
    ) -> dict[str, int]:
        """Executions per status, by tenant and flow (one indexed GROUP BY)."""
        sql, params = q.count_by_status(tenant_id, flow_id)
        return dict(await self._fetchall(sql, params))

    async def runnable_by_flow(self, *, now: datetime) -> dict[tuple[str, str], int]:
        """Runnable executions per ``(flow_id, flow_version)``."""
        rows = await self._fetchall(q.RUNNABLE_BY_FLOW, {"now": now})
        return {(flow_id, version): count for flow_id, version, count in rows}

    async def due(self, *, now: datetime, limit: int) -> builtins.list[str]:
        """Unleased executions with a due wake, deadline or wait deadline."""
        rows = await self._fetchall(q.DUE, {"now": now, "limit": limit})
        return [r[0] for r in rows]

    async def stale(
        self, *, now: datetime, updated_before: datetime, limit: int
    ) -> builtins.list[str]:
        """Running executions whose lease expired, or unleased and not updated lately."""
        rows = await self._fetchall(q.STALE, {"now": now, "before": updated_before, "limit": limit})
        return [r[0] for r in rows]

    # -- events, resume tokens, tasks -----------------------------------------------------

    async def append_event(
        self, execution_id: str, type: str, data: dict[str, Any], *, at: datetime, now: datetime
    ) -> Event | None:
        """Append one event unless a live lease is held (see ``Store.append_event``)."""
        async with self._tx() as conn:
            cur = await conn.execute(q.SELECT_FOR_APPEND, [execution_id])
            row = await cur.fetchone()
            if row is None:
                raise errors.ExecutionNotFound(execution_id)
            status, state_blob, owner, expires, tenant_id = row
            fence = False
            if status not in _TERMINAL and owner is not None:
                if expires is None or expires > now:
                    return None
                fence = True  # the lease expired: its stalled holder must not commit later
            state = orjson.loads(state_blob)
            state["event_seq"] = sequence = int(state.get("event_seq") or 0) + 1
            await conn.execute(
                q.UPDATE_STATE_FENCED if fence else q.UPDATE_STATE,
                [orjson.dumps(state), execution_id],
            )
            await conn.execute(
                q.INSERT_EVENT_ROW,
                [execution_id, sequence, type, at, tenant_id, orjson.dumps(data)],
            )
        return Event(type, execution_id, at, orjson.loads(orjson.dumps(data)), sequence, tenant_id)

    async def events(self, execution_id: str, *, after: int = 0) -> builtins.list[Event]:
        """Persisted events with ``sequence > after``, in order."""
        rows = await self._fetchall(q.EVENTS, [execution_id, after])
        expand = compact.expand_event_row
        return [
            event
            for sequence, type_, at, tenant_id, data in rows
            for event in expand(execution_id, sequence, type_, at, tenant_id, data, after)
        ]

    async def get_resume_token(self, token_hash: str) -> ResumeTokenRecord | None:
        """Look a resume token up by its SHA-256 hex digest."""
        rows = await self._fetchall(q.GET_RESUME_TOKEN, [token_hash])
        return q.token_from_row(rows[0]) if rows else None

    async def get_task(self, task_id: str) -> Task | None:
        """Return one user task."""
        rows = await self._fetchall(q.GET_TASK, [task_id])
        return q.decode_task(rows[0][0], rows[0][1]) if rows else None

    async def list_tasks(self, query: TaskQuery) -> builtins.list[Task]:
        """User tasks matching ``query``, oldest (or newest) first."""
        where: builtins.list[str] = []
        params: builtins.list[Any] = []
        for column in ("assignee", "role", "status", "tenant_id", "execution_id"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if query.after is not None:
            where.append(f"(created_at, id) {'<' if query.newest_first else '>'} (%s, %s)")
            params.extend(query.after)
        order = " DESC" if query.newest_first else ""
        sql = "SELECT doc, status FROM tasks "
        sql += ("WHERE " + " AND ".join(where) if where else "") + " ORDER BY "
        sql += f"created_at{order}, id{order} LIMIT %s"
        params.append(query.limit)
        rows = await self._fetchall(sql, params)
        return [q.decode_task(doc, status) for doc, status in rows]

    # -- retention --------------------------------------------------------------------------

    async def purge(self, query: PurgeQuery) -> PurgeBatch:
        """Delete one batch of old finished executions (see ``Store.purge``)."""
        purge_rules.statuses(query)  # a bad query fails before a connection is taken
        # Background work: never the live steps' hot connection (see ``_read``).
        async with self._read(cold=True) as conn:  # one autocommit statement per status
            batch, others = await purge_plain(conn, query)
        if not others:
            return batch
        async with self._tx(cold=True) as conn:
            executions, rows = await purge_others(conn, others, query)
        return replace(batch, executions=batch.executions + executions, rows=batch.rows + rows)

    # -- flow definitions -------------------------------------------------------------------

    async def save_flow(self, definition: dict[str, Any], *, now: datetime) -> bool:
        """Store an immutable flow version (False if identical; FlowValidationError if not)."""
        flow_id, version = str(definition.get("id")), str(definition.get("version"))
        try:
            data = orjson.dumps(definition)
        except orjson.JSONEncodeError as exc:
            raise errors.StoreError(f"flow {flow_id} is not JSON-serialisable: {exc}") from exc
        async with self._tx() as conn:
            inserted = await conn.execute(q.INSERT_FLOW, [flow_id, version, data, now])
            stored = await conn.execute(q.GET_FLOW, [flow_id, version])
        was_inserted = await inserted.fetchone() is not None
        row = await stored.fetchone()
        if was_inserted:
            return True
        if row is not None and orjson.loads(row[0]) == orjson.loads(data):
            return False
        raise errors.FlowValidationError(
            flow_id,
            [errors.ValidationIssue(
                "version",
                f"version {version} of flow {flow_id} is already stored with a different "
                "definition; versions are immutable, publish a new version",
            )],
        )  # fmt: skip

    async def get_flow(self, flow_id: str, version: str | None = None) -> StoredFlow | None:
        """One stored version, or the latest by semver."""
        if version is None:
            versions = await self.flow_versions(flow_id)
            if not versions:
                return None
            version = versions[0]
        rows = await self._fetchall(q.GET_FLOW, [flow_id, version])
        if not rows:
            return None
        definition, created_at = rows[0]
        return StoredFlow(flow_id=flow_id, version=version,
                          definition=orjson.loads(definition), created_at=created_at)  # fmt: skip

    async def list_flows(self) -> builtins.list[StoredFlow]:
        """The latest version of every stored flow, by flow id."""
        latest: dict[str, str] = {}
        for flow_id, version in await self._fetchall(q.ALL_FLOW_VERSIONS):
            best = latest.get(flow_id)
            if best is None or semver_key(version) > semver_key(best):
                latest[flow_id] = version
        if not latest:
            return []
        ids = sorted(latest)
        rows = await self._fetchall(q.GET_FLOWS, [ids, [latest[i] for i in ids]])
        flows = [
            StoredFlow(flow_id=f, version=v, definition=orjson.loads(d), created_at=at)
            for f, v, d, at in rows
        ]
        return sorted(flows, key=lambda flow: flow.flow_id)

    async def flow_versions(self, flow_id: str) -> builtins.list[str]:
        """Stored versions of one flow, newest (semver) first."""
        rows = await self._fetchall(q.FLOW_VERSIONS, [flow_id])
        return sorted((r[0] for r in rows), key=semver_key, reverse=True)

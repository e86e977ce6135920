"""The PostgreSQL purge's server side (schema 8's ``flowmonkey_purge_batch``): what the
contract suite cannot see from outside."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from contract.test_purge import CUTOFF, ROWS_PER_FINISHED, finished
from flowmonkey.stores.base import PurgeQuery
from postgres.conftest import StoreMaker

pytestmark = pytest.mark.postgres


async def _waiting_on_a_lock(raw: psycopg.AsyncConnection[Any]) -> bool:
    cur = await raw.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE %s",
        ["%flowmonkey_purge_batch%"],
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def test_an_event_appended_while_a_batch_waits_is_purged_with_it(
    make_store: StoreMaker, raw: psycopg.AsyncConnection[Any], schema: str
) -> None:
    """The batch locks its executions before deleting what they own, and each delete
    sees what a writer holding such a lock committed: no orphan events."""
    store = await make_store()
    await finished(store, "old")
    await raw.execute(f'SET search_path TO "{schema}"')
    await raw.execute("BEGIN")
    await raw.execute("SELECT 1 FROM executions WHERE id = 'old' FOR UPDATE")
    await raw.execute(
        "INSERT INTO events (execution_id, sequence, type, at, data)"
        " VALUES ('old', 3, 'note', now(), '')"
    )
    purge = asyncio.create_task(store.purge(PurgeQuery(older_than=CUTOFF, now=CUTOFF)))
    for _ in range(2000):  # until the batch waits for our lock (bounded, not timed)
        if await _waiting_on_a_lock(raw) or purge.done():
            break
    assert not purge.done(), "the batch must wait for the writer's lock"
    await raw.execute("COMMIT")
    batch = await purge
    assert (batch.executions, batch.rows) == (1, ROWS_PER_FINISHED + 1)  # the new event too
    cur = await raw.execute("SELECT count(*) FROM events WHERE execution_id = 'old'")
    assert await cur.fetchone() == (0,)


async def test_a_batch_is_one_statement_without_a_transaction_block(
    make_store: StoreMaker, raw: psycopg.AsyncConnection[Any], schema: str
) -> None:
    """The plain candidates' batch is one autocommit statement: a batch that fails
    midway (here: a lock it may not wait for) deletes nothing."""
    store = await make_store()
    for n in range(3):
        await finished(store, f"e{n}")
    await raw.execute(f'SET search_path TO "{schema}"')
    await raw.execute("BEGIN")
    await raw.execute("SELECT 1 FROM executions WHERE id = 'e2' FOR UPDATE")
    async with store._read() as conn:  # the store's own connection, lock timeout short
        await conn.execute("SET lock_timeout = '50ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            await conn.execute(
                "SELECT * FROM flowmonkey_purge_batch('completed', %s, 10, NULL, NULL, NULL,"
                " '{}', false)",
                [CUTOFF],
            )
        await conn.execute("RESET lock_timeout")
    await raw.execute("ROLLBACK")
    cur = await raw.execute("SELECT count(*) FROM executions")
    assert await cur.fetchone() == (3,)
    batch = await store.purge(PurgeQuery(older_than=CUTOFF, now=CUTOFF))
    assert (batch.executions, batch.rows) == (3, 3 * ROWS_PER_FINISHED)


async def test_a_batch_leaves_the_live_steps_hot_connection_alone(make_store: StoreMaker) -> None:
    """Purge batches borrow a pooled connection, never the hot one that a stream of steps
    keeps using (taking it moved the live steps to other backends: +59 % on their p50)."""
    store = await make_store()
    await finished(store, "old")
    await store.get("old")  # a step-like read: its connection is kept aside as the hot one
    borrowing = store._pool
    assert borrowing is not None
    hot = borrowing._hot
    assert hot is not None
    batch = await store.purge(PurgeQuery(older_than=CUTOFF, now=CUTOFF))
    assert batch.executions == 1
    assert borrowing._hot is hot

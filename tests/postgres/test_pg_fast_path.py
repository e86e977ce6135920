"""The one-statement hot path (``postgres_fast``): it keeps the ordinary path's
guarantees when the server forgets prepared statements, when a request
is larger than the socket buffer, when a statement fails, and when a caller is cancelled
mid-statement, and whatever sizes its numbers have."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import orjson
import psycopg
import pytest

from contract.factories import at, make_execution, started, step
from flowmonkey import errors
from flowmonkey.model.events import Event
from flowmonkey.stores.postgres import PostgresStore
from worker.support import eventually

pytestmark = pytest.mark.postgres

StoreMaker = Callable[..., Awaitable[PostgresStore]]


async def backend_pids(store: PostgresStore) -> set[int]:
    rows = await store._fetchall(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'flowmonkey'"
        " AND datname = current_database()"
    )
    return {row[0] for row in rows}


async def test_commits_survive_the_server_forgetting_prepared_statements(
    make_store: StoreMaker,
) -> None:
    store = await make_store(max_size=1)
    execution, lease = await started(store, make_execution(context={"n": 0}))
    for n in range(1, 4):
        execution = replace(execution, step_count=n)
        await store.commit(lease, step(execution, context_set={"n": orjson.dumps(n)}))
        async with store._read() as conn:  # one pooled connection: the one that committed
            await conn.execute("DEALLOCATE ALL")
    stored = await store.get(execution.id)
    assert stored is not None
    assert (stored.step_count, stored.context["n"]) == (3, 3)


async def test_a_request_larger_than_the_socket_buffer(make_store: StoreMaker) -> None:
    store = await make_store()
    execution, lease = await started(store)
    big = "x" * (8 * 1024 * 1024)  # far beyond any socket send buffer
    await store.commit(lease, step(replace(execution, step_count=1),
                                   context_set={"big": orjson.dumps(big)}))  # fmt: skip
    stored = await store.get(execution.id)
    assert stored is not None and stored.context["big"] == big


async def test_server_errors_keep_their_meaning(make_store: StoreMaker) -> None:
    store = await make_store()
    execution, lease = await started(store)
    with pytest.raises(errors.LeaseLost):
        await store.commit(replace(lease, token=lease.token + 7), step(execution))
    with pytest.raises(errors.StoreError, match="already exists"):
        await store.create(make_execution(id=execution.id))
    # the connection that reported the errors is still good
    await store.commit(lease, step(replace(execution, step_count=1)))
    stored = await store.get(execution.id)
    assert stored is not None and stored.step_count == 1


async def test_a_caller_cancelled_mid_statement_leaves_no_broken_connection(
    make_store: StoreMaker, postgres_dsn: str
) -> None:
    store = await make_store(max_size=2)
    execution, lease = await started(store)
    waiting = asyncio.Event()

    async def slow_commit() -> None:
        # A statement that holds the row: the commit below blocks on its lock.
        async with store._tx() as conn:
            await conn.execute("SELECT 1 FROM executions WHERE id = %s FOR UPDATE",
                               [execution.id])  # fmt: skip
            waiting.set()
            await asyncio.sleep(3600)

    holder = asyncio.create_task(slow_commit())
    await waiting.wait()
    blocked = asyncio.create_task(store.commit(lease, step(replace(execution, step_count=5))))

    async def commit_waits_on_the_lock() -> bool:
        async with await psycopg.AsyncConnection.connect(postgres_dsn) as watcher:
            cur = await watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND application_name = 'flowmonkey' AND datname = current_database()"
            )
            row = await cur.fetchone()
        return row is not None and row[0] > 0

    await eventually(commit_waits_on_the_lock, timeout=10, what="the commit to block")
    blocked.cancel()
    holder.cancel()
    for task in (blocked, holder):
        with pytest.raises(asyncio.CancelledError):
            await task
    # Whatever happened server-side, every later statement works and sees one truth.
    for n in (1, 2, 3):
        await store.commit(lease, step(replace(execution, step_count=n)))
    stored = await store.get(execution.id)
    assert stored is not None
    assert stored.step_count == 3


async def test_a_statement_prepared_for_small_numbers_takes_large_ones(
    make_store: StoreMaker,
) -> None:
    # psycopg sends a Python int as the smallest integer type that holds it; a statement
    # prepared while an event sequence fitted in int2 must still take one that does not.
    store = await make_store(max_size=1)
    execution, lease = await started(store)
    sequences = (2, 40_000, 2**40)
    for n, sequence in enumerate(sequences, start=1):
        event = Event("custom", execution.id, at(n), {"n": n}, sequence, None)
        await store.commit(lease, step(replace(execution, step_count=n), events=[event]))
    assert [e.sequence for e in await store.events(execution.id)] == list(sequences)


async def test_lists_of_keys_and_values_keep_every_character(make_store: StoreMaker) -> None:
    # Multi-row parts send their keys and values as array literals: quotes, backslashes,
    # braces, commas, blanks and "NULL" must come back exactly.
    store = await make_store()
    keys = ['a"b', "c\\d", "{x,y}", " sp ", "NULL", "ünï", ""]
    values = {key: orjson.dumps({"k": key, "v": '\\"}{,'}) for key in keys}
    values["raw"] = b""  # an empty bytea is not NULL
    values["zero"] = b"\x00\xff"
    execution, lease = await started(store, make_execution(context={"first": 1, "second": 2}))
    await store.commit(lease, step(replace(execution, step_count=1), context_set=values,
                                   context_delete=["first", "second"]))  # fmt: skip
    async with store._read() as conn:
        cur = await conn.execute(
            "SELECT key, value FROM execution_context WHERE execution_id = %s", [execution.id]
        )
        stored = dict(await cur.fetchall())
    assert stored == values

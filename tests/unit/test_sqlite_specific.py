"""SQLite-only behaviour: pragmas, schema versions, URLs, several stores/processes on a file."""

from __future__ import annotations

import asyncio
import glob
import multiprocessing
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowmonkey import errors
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.stores import migrate, sqlite_purge
from flowmonkey.stores.base import PurgeQuery, StepCommit
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.stores.sqlite_queries import split_statements

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def execution(ident: str, seconds: int = 0) -> Execution:
    """A pending execution created ``seconds`` after T0."""
    created = T0 + timedelta(seconds=seconds)
    return Execution(
        id=ident,
        flow_id="f",
        flow_version="1",
        status=ExecutionStatus.PENDING,
        current_step_id="a",
        created_at=created,
        updated_at=created,
    )


async def pragma(store: SqliteStore, name: str) -> Any:
    """Read a PRAGMA on the store's own connection."""

    def read(conn: sqlite3.Connection) -> Any:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]

    return await store._tx(False, read)


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = SqliteStore(tmp_path / "fm.db")
    await opened.initialize()
    yield opened
    await opened.close()


async def test_pragmas_are_applied(store: SqliteStore) -> None:
    assert await pragma(store, "journal_mode") == "wal"
    assert await pragma(store, "synchronous") == 2  # FULL
    assert await pragma(store, "foreign_keys") == 0  # not enforced: see SqliteStore._open
    assert await pragma(store, "busy_timeout") == 30000
    assert await pragma(store, "secure_delete") == 2  # FAST, whatever the build's default


async def test_synchronous_and_busy_timeout_are_configurable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "n.db", synchronous="normal", busy_timeout_ms=1234)
    await store.initialize()
    try:
        assert await pragma(store, "synchronous") == 1  # NORMAL
        assert await pragma(store, "busy_timeout") == 1234
    finally:
        await store.close()
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path / "x.db", synchronous="FULL; DROP TABLE executions")


async def test_secure_delete_is_configurable(tmp_path: Path) -> None:
    for given, value in (("on", 1), ("OFF", 0)):
        store = SqliteStore(tmp_path / f"{given}.db", secure_delete=given)
        await store.initialize()
        try:
            assert await pragma(store, "secure_delete") == value
        finally:
            await store.close()
    assert SqliteStore.from_url(f"sqlite:///{tmp_path}/u.db?secure_delete=on").secure_delete == "ON"
    with pytest.raises(ValueError, match="secure_delete"):
        SqliteStore(tmp_path / "x.db", secure_delete="maybe")


@pytest.mark.parametrize("threaded", [False, True])
async def test_a_purge_commits_lax_and_leaves_the_store_durable(
    tmp_path: Path, threaded: bool
) -> None:
    """A purge batch commits with ``synchronous = NORMAL`` (an undone purge is redone by
    the next pass); every other commit stays FULL, after a failed batch too."""
    store = SqliteStore(tmp_path / "p.db", threaded=threaded)
    await store.initialize()
    seen: list[int] = []
    try:
        done = execution("done")
        done.status = ExecutionStatus.COMPLETED
        await store.create(done)
        real = sqlite_purge.purge

        def spy(conn: sqlite3.Connection, query: PurgeQuery) -> Any:
            seen.append(conn.execute("PRAGMA synchronous").fetchone()[0])
            return real(conn, query)

        later = T0 + timedelta(days=30)
        query = PurgeQuery(older_than=later, now=later, limit=10)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sqlite_purge, "purge", spy)
            batch = await store.purge(query)
        assert batch.executions == 1 and await store.get("done") is None
        assert seen == [1]  # NORMAL while the batch ran
        assert await pragma(store, "synchronous") == 2  # FULL again
        with pytest.raises(ValueError, match="limit"):
            await store.purge(PurgeQuery(older_than=later, now=later, limit=0))
        assert await pragma(store, "synchronous") == 2
    finally:
        await store.close()


def _checkpoint_threads(path: Path) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"flowmonkey-checkpoint:{path}"]


async def _write_pages(store: SqliteStore) -> None:
    for n in range(40):  # ~40 x 8 KB of context: about 100 pages, far below 1,000
        ex = execution(f"big-{n}", n)
        ex.context["blob"] = "x" * 8000
        await store.create(ex)


@pytest.mark.parametrize("mode", ["background", "inline"])
async def test_the_background_checkpointer_copies_the_wal_without_a_commit(
    tmp_path: Path, mode: str
) -> None:
    """Pages written are copied into the database by the checkpoint thread, not by the
    commit that crosses SQLite's threshold (1,000 pages: here none does, so with inline
    checkpoints they stay in the WAL)."""
    path = tmp_path / "c.db"
    store = SqliteStore(path, checkpoint=mode)
    await store.initialize()
    try:
        before = path.stat().st_size
        checkpointer = store._checkpointer
        await _write_pages(store)
        if checkpointer is None:
            assert path.stat().st_size == before  # still in the WAL only
        else:
            assert len(_checkpoint_threads(path)) == 1
            for _ in range(3):  # a pass that began before the last commit may set it
                checkpointer.caught_up.clear()
                assert await asyncio.to_thread(checkpointer.caught_up.wait, 30)
                if path.stat().st_size >= before + 40 * 8000:
                    break
            assert path.stat().st_size >= before + 40 * 8000  # copied into the database
        assert (await store.get("big-39")) is not None
    finally:
        await store.close()
    assert _checkpoint_threads(path) == []  # stopped with the store


@pytest.mark.parametrize(("mode", "pages"), [("background", 10_000), ("inline", 1_000)])
async def test_writers_checkpoint_at_the_threshold_of_their_mode(
    tmp_path: Path, mode: str, pages: int
) -> None:
    """With the checkpoint thread, the writers' own checkpoint (a backstop that starts
    the WAL over) waits for 10,000 pages: past its threshold every commit runs one."""
    store = SqliteStore(tmp_path / "t.db", checkpoint=mode)
    await store.initialize()
    try:
        assert store._conn is not None
        assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (pages,)
    finally:
        await store.close()


async def test_inline_checkpoints_start_no_thread(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    store = SqliteStore(path, checkpoint="inline")
    await store.initialize()
    try:
        assert store._checkpointer is None and _checkpoint_threads(path) == []
    finally:
        await store.close()
    with pytest.raises(ValueError, match="checkpoint"):
        SqliteStore(path, checkpoint="sometimes")


async def test_schema_version_table(store: SqliteStore) -> None:
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute("SELECT version, name FROM schema_version").fetchall()
    assert rows == [(m.version, m.name) for m in migrate.load_migrations("sqlite")]
    assert rows[0] == (1, "init")


async def test_initialize_and_close_are_idempotent(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "i.db")
    await store.initialize()
    await store.initialize()
    await store.create(execution("e1"))
    await store.close()
    await store.close()
    with pytest.raises(errors.StoreError, match="initialize"):
        await store.get("e1")
    # Data survives reopening (also by a new object, like another process).
    reopened = SqliteStore(tmp_path / "i.db")
    await reopened.initialize()
    try:
        assert await reopened.get("e1") == execution("e1")
    finally:
        await reopened.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    store = SqliteStore(path)
    await store.initialize()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'future', '2030-01-01')")
    newer = SqliteStore(path)
    with pytest.raises(errors.SchemaVersionError) as caught:
        await newer.initialize()
    assert "999" in caught.value.message
    assert "upgrade flowmonkey" in caught.value.message
    with pytest.raises(errors.StoreError):
        await newer.get("x")  # not opened


async def test_concurrent_initialize_of_a_new_file(tmp_path: Path) -> None:
    stores = [SqliteStore(tmp_path / "race.db") for _ in range(4)]
    await asyncio.gather(*(s.initialize() for s in stores))
    try:
        with sqlite3.connect(tmp_path / "race.db") as conn:
            applied = conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]
            assert applied == len(migrate.load_migrations("sqlite"))  # each applied once
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "missing-dir" / "x.db")
    with pytest.raises(errors.StoreError, match="missing-dir"):
        await store.initialize()


def test_from_url() -> None:
    relative = SqliteStore.from_url("sqlite:///data/fm.db")
    assert relative.path == "data/fm.db"
    absolute = SqliteStore.from_url("sqlite:////var/lib/fm.db?synchronous=NORMAL")
    assert absolute.path == "/var/lib/fm.db"
    assert absolute.synchronous == "NORMAL"
    assert SqliteStore.from_url("sqlite:///x.db?busy_timeout_ms=5").busy_timeout_ms == 5
    overridden = SqliteStore.from_url("sqlite:///x.db?synchronous=OFF", synchronous="NORMAL")
    assert overridden.synchronous == "NORMAL"
    for bad in ("postgresql://x/y", "sqlite:///", "sqlite:///x.db?nope=1", "sqlite://x.db"):
        with pytest.raises(ValueError):
            SqliteStore.from_url(bad)


def test_migration_runner_refuses_newer_and_plans_pending() -> None:
    migrations = [migrate.Migration(1, "a", ""), migrate.Migration(2, "b", "")]
    assert [m.version for m in migrate.pending(0, migrations, database="db")] == [1, 2]
    assert [m.version for m in migrate.pending(1, migrations, database="db")] == [2]
    assert migrate.pending(2, migrations, database="db") == []
    with pytest.raises(errors.SchemaVersionError, match="db has schema version 3"):
        migrate.pending(3, migrations, database="db")


def test_split_statements() -> None:
    script = "-- c\nCREATE TABLE a (x TEXT DEFAULT ';');\n\nCREATE INDEX i ON a (x)\n  ;\n-- end\n"
    assert split_statements(script) == [
        "-- c\nCREATE TABLE a (x TEXT DEFAULT ';');",
        "CREATE INDEX i ON a (x)\n  ;",
    ]
    with pytest.raises(ValueError, match="unterminated"):
        split_statements("CREATE TABLE a (x)")


async def test_commit_stores_context_per_key(store: SqliteStore) -> None:
    await store.create(execution("e1"))
    acquired = await store.acquire("e1", owner="w", now=T0, lease_for=LEASE)
    assert acquired.lease is not None
    commit = StepCommit(execution=acquired.execution, context_set={"a": b'{"x":1}', "b": b"2"})
    await store.commit(acquired.lease, commit)
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute("SELECT key, value FROM execution_context ORDER BY key").fetchall()
    assert rows == [("a", b'{"x":1}'), ("b", b"2")]


# -- several stores / processes on one file ---------------------------------------------


async def test_two_store_objects_never_claim_the_same_execution(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first, second = SqliteStore(path), SqliteStore(path)
    await first.initialize()
    await second.initialize()
    try:
        for i in range(40):
            await first.create(execution(f"e{i:02d}", i))
        claimed: list[str] = []

        async def drain(store: SqliteStore, owner: str) -> None:
            while batch := await store.claim(owner=owner, now=T0, lease_for=LEASE, limit=3):
                claimed.extend(a.execution.id for a in batch)

        await asyncio.gather(drain(first, "a"), drain(second, "b"), drain(first, "c"))
        assert sorted(claimed) == [f"e{i:02d}" for i in range(40)]
        # A lease taken through one object fences commits through the other.
        taken = await second.acquire("e00", owner="b2", now=T0, lease_for=LEASE, steal=True)
        assert taken.lease is not None
        stale = await first.acquire("e01", owner="a2", now=T0, lease_for=LEASE, steal=True)
        assert stale.lease is not None
        await second.acquire("e01", owner="b3", now=T0, lease_for=LEASE, steal=True)
        with pytest.raises(errors.LeaseLost):
            await first.commit(stale.lease, StepCommit(execution=stale.execution))
    finally:
        await first.close()
        await second.close()


def _barrier(path: str, owner: str, processes: int) -> None:
    """Wait until every child is ready (spawned children start at different times), so
    their claims really race."""
    Path(f"{path}.ready-{owner}").touch()
    deadline = time.monotonic() + 10
    while len(glob.glob(f"{path}.ready-*")) < processes and time.monotonic() < deadline:
        time.sleep(0.005)


def _claim_in_process(path: str, owner: str, processes: int) -> list[str]:
    """Child process: claim until nothing is left; return what this process got."""

    async def run() -> list[str]:
        store = SqliteStore(path)
        await store.initialize()
        _barrier(path, owner, processes)
        got: list[str] = []
        try:
            while batch := await store.claim(owner=owner, now=T0, lease_for=LEASE, limit=1):
                got.extend(a.execution.id for a in batch)
                # Let the others in: SQLite's busy handler does not queue fairly.
                await asyncio.sleep(0.001)
        finally:
            await store.close()
        return got

    return asyncio.run(run())


async def test_processes_never_claim_the_same_execution(tmp_path: Path) -> None:
    path = str(tmp_path / "procs.db")
    store = SqliteStore(path)
    await store.initialize()
    try:
        for i in range(60):
            await store.create(execution(f"e{i:02d}", i))
    finally:
        await store.close()
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(3, mp_context=context) as pool:
        results = await asyncio.gather(
            *(loop.run_in_executor(pool, _claim_in_process, path, f"p{n}", 3) for n in range(3))
        )
    claimed = [ident for got in results for ident in got]
    assert len(claimed) == len(set(claimed))
    assert sorted(claimed) == [f"e{i:02d}" for i in range(60)]

"""The SQLite store queues its write transactions behind ``<database>-lock``.

Another process's writer holding the lock keeps this store's writes waiting (bounded by
``busy_timeout_ms``: then SQLite decides, as before); reads never wait for it; a killed
holder releases it; and the store writes again at once when the lock is free.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

from flowmonkey import errors
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.stores.sqlite_lock import WriterLock

_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


def _insert(conn: object, value: int) -> int:
    conn.execute("INSERT INTO w VALUES (?)", (value,))  # type: ignore[attr-defined]
    return value


def _count(conn: object) -> int:
    return int(conn.execute("SELECT count(*) FROM w").fetchone()[0])  # type: ignore[attr-defined]


async def _store(path: Path, busy_ms: int) -> SqliteStore:
    store = SqliteStore(path, busy_timeout_ms=busy_ms)
    await store.initialize()
    await store._tx(True, lambda c: c.execute("CREATE TABLE IF NOT EXISTS w (x)"))
    return store


async def test_a_write_waits_for_another_processs_writer_and_goes_on_when_it_is_gone(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.sqlite"
    store = await _store(db, busy_ms=100)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, f"{db}-lock", stdin=PIPE, stdout=PIPE
    )
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"held"
        # The lock is held: the write waits its busy timeout for it, then SQLite decides;
        # the database itself is free, so the write still happens (the lock only queues).
        assert await store._tx(True, _insert, 1) == 1
        # Reads never take the lock.
        assert await store._tx(False, _count) == 1
        holder.kill()  # a killed holder releases the lock
        await holder.wait()
        assert await store._tx(True, _insert, 2) == 2
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await store.close()


async def test_while_the_lock_is_held_a_write_waits_up_to_the_busy_timeout(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.sqlite"
    store = await _store(db, busy_ms=50)
    lock = WriterLock(str(db))
    assert lock.active
    assert lock.acquire(1.0)
    try:
        other = WriterLock(str(db))  # another open file description: excluded
        assert not other.acquire(0.01)
        other.close()
        # And the store's own writer waits for it (then goes on to BEGIN IMMEDIATE).
        assert store._writer is not None and not store._writer.acquire(0.01)
    finally:
        lock.release()
        lock.close()
    assert store._writer.acquire(0.01)
    store._writer.release()
    await store.close()


async def test_a_write_that_fails_releases_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    store = await _store(db, busy_ms=50)

    def boom(conn: object) -> None:
        conn.execute("INSERT INTO nowhere VALUES (1)")  # type: ignore[attr-defined]

    with pytest.raises(errors.StoreError):
        await store._tx(True, boom)
    probe = WriterLock(str(db))
    assert probe.acquire(0.0)  # free again
    probe.release()
    probe.close()
    await store.close()


def test_memory_databases_and_unopenable_lock_files_get_no_lock(tmp_path: Path) -> None:
    assert not WriterLock(":memory:").active
    (tmp_path / "db.sqlite-lock").mkdir()  # the lock file cannot be opened
    lock = WriterLock(str(tmp_path / "db.sqlite"))
    assert not lock.active and not lock.acquire(0.0)


def test_the_lock_file_is_flock_based(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "db.sqlite"))
    assert lock.acquire(0.0)
    fd = os.open(lock.path, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.release()
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
        lock.close()

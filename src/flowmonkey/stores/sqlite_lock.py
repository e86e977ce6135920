"""``WriterLock``: queue this process's SQLite write transactions behind an ``flock``.

SQLite's own wait for the write lock is its busy handler, which sleeps and retries
(1, 2, 5, 10, ... up to 100 ms per sleep). Two processes that both write often (two
workers on one file) therefore lose tens of milliseconds at a time to a lock that was
free again after a fraction of a millisecond: a worker's schedule claim measured a p99
of ~400 ms that way. Before ``BEGIN IMMEDIATE`` every flowmonkey writer takes an
exclusive ``flock`` on ``<database>-lock``, polling at most every 0.2 ms, so a waiting
writer gets the lock within a fraction of a millisecond of its release and SQLite's
busy handler is almost never reached. The lock is an optimisation only: correctness
still rests on SQLite's own locking (a writer that does not use it, such as the
``sqlite3`` shell, is still excluded by SQLite), and a process that dies releases it.

``flock`` locks belong to the open file description, so two stores on one file in the
same process exclude each other too. A write transaction never awaits while holding it
(the store runs each transaction as one synchronous call), so the event loop cannot
deadlock on it.
"""

from __future__ import annotations

import os
import time

try:
    import fcntl

    _FLOCK = True
except ImportError:  # pragma: no cover - not on POSIX: SQLite's busy handler alone
    _FLOCK = False

__all__ = ["WriterLock"]

# Poll intervals while another process holds the lock: short first (the holder's
# transaction is usually one fsync away from its end), then every 0.2 ms.
_BACKOFF = (0.0, 0.00002, 0.00005, 0.0001)
_POLL = 0.0002


class WriterLock:
    """An exclusive ``flock`` on ``<path>-lock``, taken around each write transaction.

    Args:
        path: the database file; ``:memory:`` and URI paths get no lock (nothing to share).
    """

    __slots__ = ("_fd", "path")

    def __init__(self, path: str) -> None:
        self.path = f"{path}-lock"
        self._fd: int | None = None
        if not _FLOCK or path == ":memory:" or path.startswith("file:") or not path:
            return
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            self._fd = None  # a read-only directory: fall back to SQLite's busy handler

    @property
    def active(self) -> bool:
        """Whether writes are queued through the lock file."""
        return self._fd is not None

    def acquire(self, timeout_s: float) -> bool:
        """Take the lock, waiting up to ``timeout_s``; ``False`` if it stayed held.

        On ``False`` the caller goes on to ``BEGIN IMMEDIATE`` anyway, whose busy
        timeout then decides (and reports "database is locked" as before).
        """
        fd = self._fd
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            delay = _BACKOFF[attempt] if attempt < len(_BACKOFF) else _POLL
            attempt += 1
            if delay:
                time.sleep(delay)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False

    def release(self) -> None:
        """Let the next writer in (only after ``acquire`` returned ``True``)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (the file itself stays, like SQLite's ``-shm``)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

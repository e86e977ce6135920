"""``Checkpointer``: WAL checkpoints on a thread of their own, off the writers' path.

In WAL mode a commit appends pages to the ``-wal`` file; a checkpoint copies them back
into the database and syncs it. SQLite runs that copy inside the commit that makes the
WAL pass ``wal_autocheckpoint`` pages (1,000), so one write in a thousand pages pays for
all of them: about 19 ms for 1,000 distinct pages on the development machine, against
~0.2 ms for a step's commit. Steps rewrite the same few pages, so their checkpoints stay
small; a purge, or any write that touches many pages, makes them large, and the step
that happens to cross the threshold waits for it (the live step's p99 during a purge).

The checkpointer copies the pages on its own connection and thread (SQLite releases the
GIL while it works), ``PRAGMA wal_checkpoint(PASSIVE)``: it never waits for or blocks a
writer or a reader. The writers' own automatic checkpoint stays on: when the WAL crosses
the threshold, it finds the pages already copied, copies the rest (a few), and the WAL
starts over from its beginning instead of growing. A background pass alone could not
do that: while writers keep appending, it never catches up with the end of the WAL.

That backstop is costly while it lasts: once the WAL is past the threshold, every commit
runs a checkpoint (an fsync of the WAL and one of the database) until a writer finds the
WAL fully copied and starts it over, and a purge, which adds hundreds of pages a batch,
keeps it past the threshold. With the thread doing the copying, the store raises the
threshold to ``WAL_RESTART_PAGES``, so those commits come ten times less often; the WAL
file then grows to about 40 MB (at 4 KB a page) before it starts over.

The pass runs every ``BUSY_INTERVAL`` while it finds pages to copy and backs off to
``IDLE_INTERVAL`` when it finds none, so an idle store costs a wake-up every half
second.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

__all__ = ["BUSY_INTERVAL", "IDLE_INTERVAL", "WAL_RESTART_PAGES", "Checkpointer"]

log = logging.getLogger("flowmonkey.sqlite")

BUSY_INTERVAL = 0.01
"""Seconds between passes while the last one copied pages."""
IDLE_INTERVAL = 0.5
"""Longest wait between passes on a store nobody writes to."""
WAL_RESTART_PAGES = 10_000
"""The writers' ``wal_autocheckpoint`` beside the thread (SQLite's default: 1,000). With
1,000, 3.3 % of the purge batches run beside a live stepper took 3 ms or more (a
checkpoint in their commit) and the live step p99 rose 27-37 %; with 10,000, 0.3 % and
15-24 %, at a higher purge rate (two runs each of 60,000 executions purged)."""


class Checkpointer:
    """A daemon thread running passive WAL checkpoints on ``path`` until ``stop``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.passes = 0
        """Passes run so far."""
        self.caught_up = threading.Event()
        """Set by each pass that leaves every page of a non-empty WAL copied (a test
        clears it and waits for it)."""
        self._frames = -1  # the WAL's length at the last pass
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"flowmonkey-checkpoint:{path}", daemon=True
        )

    def start(self) -> None:
        """Start the thread (its connection is opened on it)."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it (a pass under way finishes first)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # the store reports its own errors; this is an aid
            log.warning("WAL checkpointer for %s not started: %s", self.path, exc)
            return
        wait = BUSY_INTERVAL
        try:
            while not self._stop.wait(wait):
                wait = self._pass(conn, wait)
        finally:
            conn.close()

    def _pass(self, conn: sqlite3.Connection, wait: float) -> float:
        """One checkpoint; returns how long to wait before the next."""
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # e.g. the file went away: try again later
            log.debug("WAL checkpoint of %s failed: %s", self.path, exc)
            return IDLE_INTERVAL
        self.passes += 1
        # (busy, frames in the WAL, frames copied so far): -1s when not in WAL mode.
        _, frames, done = row if row is not None else (0, -1, -1)
        grew, self._frames = frames != self._frames, frames
        if frames > 0 and done == frames:
            self.caught_up.set()
        if frames > 0 and (grew or done < frames):
            return BUSY_INTERVAL  # writers at work, or a reader held pages back
        return min(wait * 2, IDLE_INTERVAL)

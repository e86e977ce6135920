"""``PostgresWakeSignaler``: LISTEN/NOTIFY wake-ups between worker processes.

A dedicated connection (not from the store's pool: a LISTEN must stay on one session for
its whole life) listens on the schema's channel; ``PostgresStore`` sends ``pg_notify``
from inside the transactions that make an execution runnable for others, so listeners
hear about it only once it is committed. Signals are hints: workers keep polling, so a
notification lost while the connection was down delays work by one poll interval at
most. After a reconnect, waiters are woken once so they poll immediately.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from flowmonkey import errors
from flowmonkey.stores.postgres_conn import DEFAULT_SCHEMA, redact, validate_schema, wake_channel

__all__ = ["PostgresWakeSignaler"]

logger = logging.getLogger(__name__)

_MAX_BUFFERED = 10_000
"""Announcements kept between ``wait`` calls; older ones are dropped (they are hints)."""


class PostgresWakeSignaler:
    """``WakeSignaler`` over PostgreSQL LISTEN/NOTIFY.

    Args:
        dsn: libpq connection string or URL (the same server as the store).
        channel: channel name; default ``flowmonkey_wake_<schema>``, the one
            ``PostgresStore(schema=...)`` notifies on.
        schema: used only to derive the default channel.
        reconnect_min, reconnect_max: backoff bounds (seconds) after a lost connection.
    """

    def __init__(
        self,
        dsn: str,
        *,
        channel: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        connect_timeout: float = 5.0,
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.channel = channel or wake_channel(validate_schema(schema))
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": "flowmonkey-wake",
        }
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._pending: deque[str] = deque(maxlen=_MAX_BUFFERED)
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sender: AsyncConnection[Any] | None = None
        self._send_lock = asyncio.Lock()
        self.reconnects = 0
        """How many times the LISTEN connection was re-established (for tests/metrics)."""

    async def _listen_connection(self) -> AsyncConnection[Any]:
        conn = await AsyncConnection.connect(self.dsn, **self._kwargs)
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except BaseException:
            await conn.close()
            raise
        return conn

    async def start(self) -> None:
        """Connect and LISTEN. Idempotent.

        Raises:
            StoreUnavailable: the server cannot be reached.
        """
        if self._task is not None:
            return
        try:
            conn = await self._listen_connection()
        except psycopg.Error as exc:
            raise errors.StoreUnavailable(
                f"cannot LISTEN on PostgreSQL at {redact(self.dsn)}: {str(exc).strip()}"
            ) from exc
        self._task = asyncio.create_task(self._run(conn), name=f"listen:{self.channel}")

    async def _run(self, conn: AsyncConnection[Any] | None) -> None:
        delay = self._reconnect_min
        while True:
            try:
                if conn is None:
                    conn = await self._listen_connection()
                    self.reconnects += 1
                    delay = self._reconnect_min
                    # Anything announced while we were away is lost: wake waiters so
                    # they poll the store now instead of after their timeout.
                    self._event.set()
                async for note in conn.notifies():
                    self._pending.append(note.payload)
                    self._event.set()
                raise psycopg.OperationalError("notification stream ended")
            except Exception as exc:  # any failure: log, back off, reconnect
                logger.warning(
                    "LISTEN connection to %s lost (%s); reconnecting in %.1fs",
                    redact(self.dsn), exc, delay,
                )  # fmt: skip
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                    conn = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)

    async def close(self) -> None:
        """Stop listening and disconnect. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sender, self._sender = self._sender, None
        if sender is not None:
            with contextlib.suppress(Exception):
                await sender.close()

    async def notify(self, execution_id: str) -> None:
        """Announce ``execution_id`` to every listener (``pg_notify``, autocommit)."""
        async with self._send_lock:
            for attempt in (1, 2):
                try:
                    if self._sender is None or self._sender.closed:
                        self._sender = await AsyncConnection.connect(self.dsn, **self._kwargs)
                    await self._sender.execute(
                        "SELECT pg_notify(%s, %s)", [self.channel, execution_id]
                    )
                    return
                except psycopg.Error as exc:
                    if self._sender is not None:
                        with contextlib.suppress(Exception):
                            await self._sender.close()
                    self._sender = None
                    if attempt == 2 or not isinstance(exc, psycopg.OperationalError):
                        raise errors.StoreUnavailable(
                            f"cannot NOTIFY on PostgreSQL at {redact(self.dsn)}: {str(exc).strip()}"
                        ) from exc

    async def wait(self, timeout: float) -> list[str]:
        """Announcements since the last call (arrival order, duplicates dropped), or
        ``[]`` after ``timeout`` seconds (also right after a reconnect)."""
        if not self._pending:
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that arrives as its timeout fires.
                async with asyncio.timeout(timeout):
                    await self._event.wait()
        self._event.clear()
        out = list(dict.fromkeys(self._pending))
        self._pending.clear()
        return out

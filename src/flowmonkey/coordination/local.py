"""``LocalWakeSignaler``: wake-ups inside one process (an API and its in-process worker).

With SQLite or the memory store nothing crosses processes anyway; this lets an execution
created by ``flowmonkey serve`` reach the worker in the same process at once instead of
after its poll interval.
"""

from __future__ import annotations

import asyncio

__all__ = ["LocalWakeSignaler"]


class LocalWakeSignaler:
    """A ``WakeSignaler`` for one event loop."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._event = asyncio.Event()

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def notify(self, execution_id: str) -> None:
        """Announce ``execution_id``."""
        self._ids.append(execution_id)
        self._event.set()

    async def wait(self, timeout: float) -> list[str]:
        """The ids announced since the last call, waiting up to ``timeout`` for one."""
        if not self._ids:
            try:
                async with asyncio.timeout(timeout):  # not wait_for: see PostgresWakeSignaler
                    await self._event.wait()
            except TimeoutError:
                return []
        self._event.clear()
        ids, self._ids = self._ids, []
        return ids

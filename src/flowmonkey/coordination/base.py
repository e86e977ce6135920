"""Coordination protocols: wake-up signals between processes, and explicit locks."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Lock", "LockManager", "WakeSignaler"]


@runtime_checkable
class WakeSignaler(Protocol):
    """Tells idle workers that an execution became runnable (created, resumed, woken).

    A signal is only a hint: workers keep polling the store as the fallback, so a lost
    signal delays work by at most the poll interval and never loses it.
    """

    async def start(self) -> None:
        """Connect and begin listening. Idempotent."""
        ...

    async def close(self) -> None:
        """Stop listening and disconnect. Idempotent."""
        ...

    async def notify(self, execution_id: str) -> None:
        """Announce that ``execution_id`` is runnable now (to every listening process)."""
        ...

    async def wait(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds for announcements.

        Returns the execution ids announced since the previous call (possibly several,
        in arrival order), or ``[]`` on timeout.
        """
        ...


@runtime_checkable
class Lock(Protocol):
    """A held lock; fenced by a random token so only its holder can release or extend it."""

    key: str
    token: str

    async def release(self) -> bool:
        """Release if still held by this token. Returns False if it was lost."""
        ...

    async def extend(self, ttl: timedelta) -> bool:
        """Push the expiry to now + ``ttl`` if still held. Returns False if lost."""
        ...


@runtime_checkable
class LockManager(Protocol):
    """Hands out expiring locks by key."""

    async def acquire(
        self, key: str, ttl: timedelta, *, wait: timedelta | None = None
    ) -> Lock | None:
        """Take the lock, waiting up to ``wait`` (default: do not wait). ``None`` if busy."""
        ...

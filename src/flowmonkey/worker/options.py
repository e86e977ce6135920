"""``WorkerOptions``: how a ``Worker`` claims, schedules, recovers and shuts down."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import timedelta

__all__ = ["WorkerOptions", "default_worker_id"]


def default_worker_id() -> str:
    """``hostname-pid-random``: unique per process, readable in logs and lease owners."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """Configuration of a ``Worker``. Intervals are in seconds.

    Every default suits production; tests shorten the intervals and ``lease_for``.
    """

    concurrency: int = 10
    """Most executions driven at once by this worker."""
    poll_interval: float = 1.0
    """How often an idle worker polls the store when no wake signal arrives."""
    scheduler_interval: float = 0.5
    """How often due timers, retries and timeouts are applied (``engine.tick_timers``)."""
    reaper_interval: float = 5.0
    """How often stale runs are recovered (``engine.recover_stale``)."""
    purge_interval: float = 600.0
    """How often the retention pass runs (``engine.purge()``: ``EngineOptions.retention``
    and each flow's ``retention``; nothing is purged when neither is set)."""
    purge_pause: float = 0.05
    """Longest wait, before each purge batch, for this worker's runs in flight to end
    (live steps first; a batch then goes ahead anyway, so a busy worker still purges)."""
    purge_share: float | None = None
    """Most of a busy worker's time its retention pass may take (0 to 1); ``None``: the
    engine's default for the store (0.3 on SQLite and in memory, 0.25 on PostgreSQL).
    An idle worker purges at full speed whatever this says."""
    schedule_interval: float = 1.0
    """Longest sleep of the schedule loop (it wakes earlier for the next due time)."""
    fire_schedules: bool = True
    """Fire cron schedules in this worker (every worker may: each time fires once)."""
    lease_for: timedelta | None = None
    """Lease length for claimed executions; ``None`` keeps the engine's ``lease_for``.
    A crashed worker's executions are picked up again at most this long after the crash."""
    shutdown_grace: float = 30.0
    """On stop, how long in-flight steps may run before they are cancelled."""
    worker_id: str = field(default_factory=default_worker_id)
    """Lease owner id of this worker (also in every log line)."""
    health_port: int | None = None
    """Serve ``GET /healthz`` on this port (``0`` picks a free one); ``None``: no server."""
    health_host: str = "127.0.0.1"
    """Interface of the health server (``0.0.0.0`` to expose it to an orchestrator)."""
    max_backoff: float = 30.0
    """Longest delay between retries while the store is unreachable."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        for name in (
            "poll_interval",
            "scheduler_interval",
            "schedule_interval",
            "reaper_interval",
            "max_backoff",
            "purge_interval",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.purge_pause < 0:
            raise ValueError("purge_pause must be >= 0")
        if self.purge_share is not None and not 0 < self.purge_share <= 1:
            raise ValueError("purge_share must be > 0 and <= 1")
        if self.shutdown_grace < 0:
            raise ValueError("shutdown_grace must be >= 0")
        if self.lease_for is not None and self.lease_for <= timedelta(0):
            raise ValueError("lease_for must be positive")
        if self.health_port is not None and not 0 <= self.health_port <= 65535:
            raise ValueError("health_port must be between 0 and 65535")
        if not self.worker_id:
            raise ValueError("worker_id must not be empty")

"""What the routes share: the settings of one app and its state (``app.state.flowmonkey``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from flowmonkey.api.auth import KeyChecker
    from flowmonkey.api.metrics import Metrics
    from flowmonkey.api.ratelimit import RateLimiter
    from flowmonkey.engine.engine import Engine

__all__ = ["ApiSettings", "ApiState", "BackgroundWorker"]


class BackgroundWorker(Protocol):
    """What the app needs of an in-process worker (``flowmonkey.worker.Worker``)."""

    async def run(self, *, handle_signals: bool | None = None) -> None:
        """Run until ``stop``."""
        ...

    def stop(self) -> None:
        """Ask it to finish (in-flight steps finish or are released)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    """How the service behaves. Defaults suit one process serving a team."""

    auth: bool = True
    """Check API keys. ``False`` (``serve --dev``) lets every caller act as an admin."""
    max_body_bytes: int = 1 << 20
    """Largest request body (413 above)."""
    rate_limit: float = 200.0
    """Requests per second per API key (token bucket refill)."""
    rate_burst: int = 400
    """Bucket size per API key."""
    public_rate_limit: float = 10.0
    """Requests per second per client IP on the unauthenticated endpoints."""
    public_rate_burst: int = 30
    inline: bool = True
    """Run the steps of executions started/resumed through the API in this process (it
    has the handlers); ``False`` (``serve --no-worker``) leaves them to workers."""
    event_poll_interval: float = 0.25
    """How often an SSE stream looks for events written by other processes."""
    request_log: bool = True
    """One JSON line per request on the ``flowmonkey.api.access`` logger."""
    base_url: str | None = None
    """The public URL of this service (for ``Location`` and resume links)."""
    ui: bool = True
    """Serve the web dashboard at ``/ui/``."""
    ui_secret: str | None = None
    """Key that signs dashboard session cookies and CSRF tokens. ``None``: a random one
    per app, so sessions end when the process restarts; set the same value on every
    process behind one load balancer."""
    ui_session_ttl: float = 8 * 3600.0
    """Seconds a dashboard sign-in lasts (then the dashboard asks for the key again)."""
    shutdown_grace: float = 30.0
    """Seconds the steps this app runs itself (``inline``) get to finish at shutdown;
    then they are cancelled and their leases expire, so any worker takes them over."""


@dataclass(slots=True, kw_only=True)
class ApiState:
    """Everything the routes share (``app.state.flowmonkey``)."""

    engine: Engine
    settings: ApiSettings
    keys: KeyChecker | None
    limiter: RateLimiter | None
    public_limiter: RateLimiter
    metrics: Metrics | None
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    event_waiters: dict[str, set[asyncio.Event]] = field(default_factory=dict)
    """Live event streams by execution id, set when another process commits events
    (PostgreSQL with ``notify_events``; see ``listen_for_events``)."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def wake_streams(self, execution_ids: list[str]) -> None:
        """Wake the event streams of these executions."""
        for execution_id in execution_ids:
            for event in self.event_waiters.get(execution_id, ()):
                event.set()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, awaited at shutdown."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

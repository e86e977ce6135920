"""``create_app``: the FastAPI application of the flowmonkey service.

One app, one router per resource, one auth dependency (``auth.authenticate``). The app's
lifespan opens the engine if it owns it (and an in-process ``Worker`` when given), and
closes both on shutdown: the worker first (it finishes or releases in-flight steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from flowmonkey import __version__
from flowmonkey.api.auth import KeyChecker
from flowmonkey.api.metrics import Metrics
from flowmonkey.api.metrics_triggers import install_trigger_metrics
from flowmonkey.api.middleware import RequestMiddleware
from flowmonkey.api.problems import install_problem_handlers
from flowmonkey.api.ratelimit import RateLimiter
from flowmonkey.api.schemas import ProblemOut

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine
    from flowmonkey.worker.worker import Worker

__all__ = ["ApiSettings", "ApiState", "create_app"]

log = logging.getLogger("flowmonkey.api")


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
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, awaited at shutdown."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


def create_app(
    engine: Engine,
    *,
    auth: bool = True,
    settings: ApiSettings | None = None,
    owns_engine: bool = True,
    worker: Worker | None = None,
    metrics: bool = True,
) -> FastAPI:
    """The flowmonkey HTTP API over ``engine``, ready to serve or mount.

    Args:
        engine: the engine whose store the API reads and writes.
        auth: check API keys (``False`` = ``--dev``: every caller is an admin).
        settings: limits and behaviour (``auth`` here wins over ``settings.auth``).
        owns_engine: open the engine on startup and close it on shutdown.
        worker: an in-process ``Worker`` to run alongside (started and stopped by the
            app's lifespan).
        metrics: serve ``/metrics`` (Prometheus) and count requests.
    """
    from dataclasses import replace

    settings = replace(settings or ApiSettings(), auth=auth)
    state = ApiState(
        engine=engine,
        settings=settings,
        keys=KeyChecker(engine.store, engine.clock.now) if settings.auth else None,
        limiter=RateLimiter(settings.rate_limit, settings.rate_burst) if settings.auth else None,
        public_limiter=RateLimiter(settings.public_rate_limit, settings.public_rate_burst),
        metrics=Metrics() if metrics else None,
    )
    install_trigger_metrics(engine, state.metrics)  # triggers (issue 13)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owns_engine:
            await engine.initialize()
        unsubscribe = engine.on("*", state.metrics.on_event) if state.metrics else None
        worker_task: asyncio.Task[None] | None = None
        if worker is not None:
            worker_task = asyncio.get_running_loop().create_task(worker.run(handle_signals=False))
        try:
            yield
        finally:
            state.stopping.set()
            if worker is not None and worker_task is not None:
                worker.stop()
                with contextlib.suppress(Exception):
                    await worker_task
            if state.background:
                await asyncio.gather(*state.background, return_exceptions=True)
            if state.keys is not None:
                await state.keys.drain()
            if unsubscribe is not None:
                unsubscribe()
            if owns_engine:
                await engine.close()

    app = FastAPI(
        title="flowmonkey",
        version=__version__,
        summary="Durable workflows over HTTP.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
        responses={
            "default": {"model": ProblemOut, "description": "An RFC 9457 problem."},
        },
    )
    app.state.flowmonkey = state
    install_problem_handlers(app)
    app.add_middleware(RequestMiddleware, state=state)

    from flowmonkey.api import routes_executions, routes_flows, routes_public, routes_tasks

    app.include_router(routes_public.router)
    app.include_router(routes_flows.router, prefix="/api/v1")
    app.include_router(routes_executions.router, prefix="/api/v1")
    app.include_router(routes_tasks.router, prefix="/api/v1")
    from flowmonkey.api import routes_schedules  # triggers (issue 13)

    app.include_router(routes_schedules.router, prefix="/api/v1")
    from flowmonkey.api import routes_hooks  # triggers (issue 13)

    app.include_router(routes_hooks.router, prefix="/api/v1")
    app.include_router(routes_hooks.public_router)
    from flowmonkey.api import routes_forms  # triggers (issue 13)

    app.include_router(routes_forms.router, prefix="/api/v1")
    app.include_router(routes_forms.public_router)
    return app

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
from typing import TYPE_CHECKING

from fastapi import FastAPI

from flowmonkey import __version__
from flowmonkey.api.auth import KeyChecker
from flowmonkey.api.fastpath import FastRoutes
from flowmonkey.api.metrics import Metrics
from flowmonkey.api.metrics_triggers import install_trigger_metrics
from flowmonkey.api.middleware import RequestMiddleware
from flowmonkey.api.openapi import install_openapi
from flowmonkey.api.problems import install_problem_handlers
from flowmonkey.api.ratelimit import RateLimiter
from flowmonkey.api.schemas import ProblemOut
from flowmonkey.api.state import ApiSettings, ApiState, BackgroundWorker

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine

__all__ = ["ApiSettings", "ApiState", "create_app"]

log = logging.getLogger("flowmonkey.api")


def create_app(
    engine: Engine,
    *,
    auth: bool = True,
    settings: ApiSettings | None = None,
    owns_engine: bool = True,
    worker: BackgroundWorker | None = None,
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
    # Requests that arrive together create in one transaction (one fsync for them all).
    engine.runtime.creator.allowed = True

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owns_engine:
            await engine.initialize()
        unsubscribe = engine.on("*", state.metrics.on_event) if state.metrics else None
        listener = await _start_event_listener(state)
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
                _, late = await asyncio.wait(set(state.background), timeout=settings.shutdown_grace)
                for task in late:
                    task.cancel()
                await asyncio.gather(*state.background, *late, return_exceptions=True)
            if state.keys is not None:
                await state.keys.drain()
            if unsubscribe is not None:
                unsubscribe()
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listener
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
        responses={"default": {"model": ProblemOut, "description": "An RFC 9457 problem."}},
    )
    app.state.flowmonkey = state
    install_problem_handlers(app)
    install_openapi(app)
    app.add_middleware(RequestMiddleware, state=state, fast=FastRoutes())

    from flowmonkey.api import (
        routes_control,
        routes_events,
        routes_executions,
        routes_flows,
        routes_public,
        routes_tables,
        routes_tasks,
    )

    app.include_router(routes_public.router)
    for module in (routes_flows, routes_executions, routes_control, routes_events, routes_tasks):
        app.include_router(module.router)
    from flowmonkey.api import routes_forms, routes_hooks, routes_schedules  # triggers (issue 13)

    for module in (routes_schedules, routes_hooks, routes_forms):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(routes_hooks.public_router)
    app.include_router(routes_forms.public_router)
    app.include_router(routes_tables.router)
    if settings.ui:
        from flowmonkey.api.ui import install_ui

        install_ui(app, settings)
    return app


async def _start_event_listener(state: ApiState) -> asyncio.Task[None] | None:
    """LISTEN for other processes' events when the store NOTIFYs them (PostgreSQL with
    ``notify_events``): SSE streams then wake at once instead of at their next poll."""
    factory = getattr(state.engine.store, "event_listener", None)
    signaler = factory() if callable(factory) else None
    if signaler is None:
        return None
    try:
        await signaler.start()
    except Exception as exc:  # streams still poll; say why they are slower
        log.warning("cannot LISTEN for events (%s); SSE streams poll instead", exc)
        return None

    async def listen() -> None:
        try:
            while not state.stopping.is_set():
                ids = await signaler.wait(1.0)
                if ids:
                    state.wake_streams(ids)
        finally:
            await signaler.close()

    return asyncio.get_running_loop().create_task(listen())

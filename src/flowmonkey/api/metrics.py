"""Prometheus metrics of one app, on its own registry (no process-global state).

Counters of steps and HTTP requests and the step-duration histogram are fed from the
engine's event bus and the request middleware; executions by status and the runnable
backlog are read from the store when ``/metrics`` is scraped (a bounded count).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

from flowmonkey.model.execution import ExecutionStatus

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine
    from flowmonkey.model.events import Event

__all__ = ["Metrics"]

_COUNT_CAP = 1_000
"""Executions counted per status on a scrape (a count above shows as the cap)."""
_OPEN_STEPS_CAP = 100_000
"""Step starts remembered for the duration histogram (bounded if ends go missing)."""
_HTTP_CHILDREN_CAP = 4_096
"""Labelled request counters kept ready (route templates are few; methods are not)."""


class Metrics:
    """The ``flowmonkey_*`` metrics of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._started: dict[tuple[str | None, object], datetime] = {}
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        self.steps = Counter(
            "flowmonkey_steps",
            "Step attempts finished, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "flowmonkey_step_duration_seconds",
            "Duration of step attempts.",
            registry=self.registry,
        )
        self.executions_finished = Counter(
            "flowmonkey_executions_finished",
            "Executions that reached a terminal status in this process.",
            ["status"],
            registry=self.registry,
        )
        self.executions = Gauge(
            "flowmonkey_executions",
            f"Executions by status (counted up to {_COUNT_CAP} each at scrape time).",
            ["status"],
            registry=self.registry,
        )
        self.backlog = Gauge(
            "flowmonkey_runnable_backlog",
            "Pending executions waiting for a worker (at scrape time, capped).",
            registry=self.registry,
        )
        self.schedule_lag = Gauge(
            "flowmonkey_schedule_lag_seconds",
            "Delay of the latest schedule fire behind its time (0 until schedules exist).",
            registry=self.registry,
        )
        self.purged_executions = Gauge(
            "flowmonkey_purged_executions",
            "Finished executions purged by this process (retention passes and purges; total).",
            registry=self.registry,
        )
        self.purged_rows = Gauge(
            "flowmonkey_purged_rows",
            "Store rows deleted by this process's purges (total).",
            registry=self.registry,
        )
        self.http_requests = Counter(
            "flowmonkey_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "flowmonkey_http_request_duration_seconds",
            "HTTP request durations by route template.",
            ["route"],
            registry=self.registry,
        )
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its duration. The labelled children are kept per
        (route, method, status): ``labels()`` costs a lock and a dict build per call."""
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            children = (
                self.http_requests.labels(route=route, method=method, status=str(status)),
                self.http_seconds.labels(route=route),
            )
            if len(self._http_children) < _HTTP_CHILDREN_CAP:  # methods come from clients
                self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def on_event(self, event: Event) -> None:
        """Engine bus listener (events of the steps this process runs)."""
        kind = event.type
        key = (event.execution_id, event.data.get("step_id"))
        if kind == "step.started":
            if len(self._started) < _OPEN_STEPS_CAP:
                self._started[key] = event.timestamp
        elif kind in ("step.completed", "step.failed", "step.timeout"):
            outcome = str(event.data.get("outcome", "failure"))
            self.steps.labels(outcome=outcome).inc()
            started = self._started.pop(key, None)
            if started is not None:
                self.step_seconds.observe((event.timestamp - started).total_seconds())
        elif kind in ("execution.completed", "execution.failed", "execution.cancelled"):
            self.executions_finished.labels(status=kind.split(".", 1)[1]).inc()

    async def render(self, engine: Engine) -> bytes:
        """Refresh the store-backed gauges, then the exposition text."""
        for status in ExecutionStatus:
            page = await engine.list(status=status, limit=_COUNT_CAP)
            count = len(page.items)
            self.executions.labels(status=str(status)).set(count)
            if status is ExecutionStatus.PENDING:
                self.backlog.set(count)
        self.purged_executions.set(engine.purge_stats.executions)
        self.purged_rows.set(engine.purge_stats.rows)
        return generate_latest(self.registry)

    @staticmethod
    def content_type() -> str:
        """The exposition format's content type."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return str(CONTENT_TYPE_LATEST)

"""Prometheus metrics of schedules, webhook triggers and forms (on the app's registry).

Counted from engine bus events, so the schedules a ``serve`` process's in-process worker
fires are counted where ``/metrics`` is served:

- ``flowmonkey_schedule_fires_total{outcome}``: ``started``, ``skipped``, ``buffered``,
  and ``missed`` (times dropped outside the catch-up window) - skipped and missed runs
  are visible, not silent;
- ``flowmonkey_schedule_fire_lag_seconds``: execution created minus scheduled time (the
  ``flowmonkey_schedule_lag_seconds`` gauge shows the latest);
- ``flowmonkey_trigger_requests_total{kind, outcome}``: webhook and form requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    from flowmonkey.api.metrics import Metrics
    from flowmonkey.engine.engine import Engine
    from flowmonkey.model.events import Event

__all__ = ["TriggerMetrics", "install_trigger_metrics"]

_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)


class TriggerMetrics:
    """The trigger metrics on ``metrics.registry``."""

    def __init__(self, metrics: Metrics) -> None:
        self._base = metrics
        self.fires = Counter(
            "flowmonkey_schedule_fires",
            "Scheduled times handled, by outcome (started, skipped, buffered, missed).",
            ["outcome"],
            registry=metrics.registry,
        )
        self.lag = Histogram(
            "flowmonkey_schedule_fire_lag_seconds",
            "Execution created minus its scheduled time.",
            buckets=_LAG_BUCKETS,
            registry=metrics.registry,
        )
        self.requests = Counter(
            "flowmonkey_trigger_requests",
            "Webhook and form requests by kind and outcome.",
            ["kind", "outcome"],
            registry=metrics.registry,
        )

    def on_event(self, event: Event) -> None:
        """Engine bus listener."""
        data = event.data
        if event.type == "schedule.fired":
            self.fires.labels(outcome="started").inc()
            lag = float(data.get("lag_seconds", 0.0))
            self.lag.observe(max(lag, 0.0))
            self._base.schedule_lag.set(lag)
        elif event.type == "schedule.skipped":
            if data.get("reason") == "outside_catchup_window":
                self.fires.labels(outcome="missed").inc(int(data.get("count", 1)))
            else:
                self.fires.labels(outcome=str(data.get("outcome", "skipped"))).inc()
        elif event.type in ("trigger.received", "form.submitted"):
            kind = "hook" if event.type == "trigger.received" else "form"
            self.requests.labels(kind=kind, outcome=str(data.get("outcome", "accepted"))).inc()


def install_trigger_metrics(engine: Engine, metrics: Metrics | None) -> TriggerMetrics | None:
    """Create the trigger metrics and subscribe them to ``engine``'s events."""
    if metrics is None:
        return None
    made = TriggerMetrics(metrics)
    for kind in ("schedule.fired", "schedule.skipped", "trigger.received", "form.submitted"):
        engine.on(kind, made.on_event)
    return made

"""OpenTelemetry tracing of executions: a span per step attempt under a span per run.

Needs ``opentelemetry-api`` (the ``otel`` extra adds the SDK and the OTLP exporter); it
is imported only here, so ``import flowmonkey`` never pays for it. ``ExecutionTracer``
listens to an engine's events and turns them into spans after the fact (start and end
times from the events), so tracing adds nothing to the step path itself:

- ``execution <flow id>``: one span per stretch of an execution driven by this process
  (from its first step until it waits or ends here), child of the W3C ``traceparent``
  stored in the execution's metadata (``POST /api/v1/executions`` stores the request's),
  so the steps any worker runs later (after a wait, a resume, a crash) join that trace;
- ``step <step id>``: one span per step attempt, child of the run span, with the
  attributes ``flowmonkey.execution_id``, ``flowmonkey.flow_id``,
  ``flowmonkey.flow_version``, ``flowmonkey.step_id``, ``flowmonkey.attempt``,
  ``flowmonkey.tenant_id`` (when set), ``flowmonkey.run_number``; failures set the
  span's status to ERROR with the error code.

Without the SDK (or with a no-op provider) every span is a no-op.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.engine.engine import Engine
    from flowmonkey.model.events import Event

__all__ = [
    "TRACEPARENT_KEY",
    "ExecutionTracer",
    "configure_from_env",
    "valid_traceparent",
]

log = logging.getLogger("flowmonkey.tracing")

TRACEPARENT_KEY = "traceparent"
"""The execution metadata key that holds the W3C traceparent of its creator."""

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_MAX_OPEN = 10_000
"""Run spans kept open at most (ends the oldest beyond: a lease lost mid-run)."""
_END_OF_RUN = frozenset(
    {"execution.waiting", "execution.completed", "execution.failed", "execution.cancelled"}
)
_STEP_END = frozenset({"step.completed", "step.failed", "step.timeout"})


def valid_traceparent(value: str | None) -> str | None:
    """``value`` if it is a well-formed W3C traceparent (version 00), else ``None``."""
    if value is None:
        return None
    value = value.strip().lower()
    if not _TRACEPARENT.match(value) or value.startswith("ff"):
        return None
    if value[3:35] == "0" * 32 or value[36:52] == "0" * 16:
        return None
    return value


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


class ExecutionTracer:
    """Spans from an engine's events (see the module docstring)."""

    def __init__(self, engine: Engine, tracer_provider: Any = None) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        provider = tracer_provider or trace.get_tracer_provider()
        self._trace = trace
        self._tracer = provider.get_tracer("flowmonkey")
        self._propagator = TraceContextTextMapPropagator()
        self._engine = engine
        self._runs: dict[str, Any] = {}
        self._starts: dict[tuple[str, Any, Any], int] = {}

    def install(self) -> Callable[[], None]:
        """Start listening; returns the function that stops it."""
        return self._engine.on("*", self.on_event)

    def on_event(self, event: Event) -> None:
        """Bus listener."""
        execution_id = event.execution_id
        if execution_id is None:
            return
        kind = event.type
        data = event.data
        if kind == "step.started":
            self._run_span(execution_id, event)
            key = (execution_id, data.get("step_id"), data.get("attempt"))
            if len(self._starts) < _MAX_OPEN:
                self._starts[key] = _ns(event.timestamp)
        elif kind in _STEP_END:
            self._step_span(execution_id, event)
        elif kind in _END_OF_RUN:
            span = self._runs.pop(execution_id, None)
            if span is not None:
                span.set_attribute("flowmonkey.status", kind.split(".", 1)[1])
                span.end(end_time=_ns(event.timestamp))

    def _run_span(self, execution_id: str, event: Event) -> Any:
        span = self._runs.get(execution_id)
        if span is not None:
            return span
        run = self._engine.runtime.inflight.get(execution_id)
        execution = run.execution if run is not None else None
        attributes: dict[str, Any] = {"flowmonkey.execution_id": execution_id}
        parent = None
        name = "execution"
        if execution is not None:
            name = f"execution {execution.flow_id}"
            attributes["flowmonkey.flow_id"] = execution.flow_id
            attributes["flowmonkey.flow_version"] = execution.flow_version
            attributes["flowmonkey.run_number"] = execution.run_number
            if execution.tenant_id is not None:
                attributes["flowmonkey.tenant_id"] = execution.tenant_id
            traceparent = valid_traceparent(execution.metadata.get(TRACEPARENT_KEY))
            if traceparent is not None:
                parent = self._propagator.extract({"traceparent": traceparent})
        span = self._tracer.start_span(
            name, context=parent, start_time=_ns(event.timestamp), attributes=attributes
        )
        if len(self._runs) >= _MAX_OPEN:
            oldest = next(iter(self._runs))
            self._runs.pop(oldest).end()
        self._runs[execution_id] = span
        return span

    def _step_span(self, execution_id: str, event: Event) -> None:
        data = event.data
        step_id = data.get("step_id")
        attempt = data.get("attempt")
        end = _ns(event.timestamp)
        start = self._starts.pop((execution_id, step_id, attempt), end)
        run_span = self._run_span(execution_id, event)
        attributes = dict(run_span.attributes) if hasattr(run_span, "attributes") else {}
        attributes = {k: v for k, v in attributes.items() if k != "flowmonkey.status"}
        attributes.update({"flowmonkey.execution_id": execution_id})
        if step_id is not None:
            attributes["flowmonkey.step_id"] = str(step_id)
        if attempt is not None:
            attributes["flowmonkey.attempt"] = int(attempt)
        outcome = data.get("outcome") or ("timeout" if event.type == "step.timeout" else "failure")
        attributes["flowmonkey.outcome"] = str(outcome)
        context = self._trace.set_span_in_context(run_span)
        span = self._tracer.start_span(
            f"step {step_id}", context=context, start_time=start, attributes=attributes
        )
        if event.type != "step.completed":
            from opentelemetry.trace import Status, StatusCode

            error = data.get("error") or {}
            code = error.get("code", "STEP_FAILED") if isinstance(error, dict) else "STEP_FAILED"
            span.set_status(Status(StatusCode.ERROR, str(code)))
        span.end(end_time=end)


def configure_from_env(engine: Engine) -> Callable[[], None] | None:
    """Trace ``engine`` to OTLP when the SDK is installed and an OTLP endpoint is set
    (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT``; ``OTEL_SERVICE_NAME``,
    default ``flowmonkey``). Returns the shutdown function (flushes spans), or ``None``."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint or os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "none":
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed")
        return None
    name = os.environ.get("OTEL_SERVICE_NAME", "flowmonkey")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    stop = ExecutionTracer(engine, provider).install()

    def shutdown() -> None:
        stop()
        provider.shutdown()

    log.info("tracing to %s as service %s", endpoint, name)
    return shutdown

"""OpenTelemetry: the traceparent of the creating request is stored, and the steps run by
another engine after a wait and a resume join the same trace (SDK in-memory exporter)."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.testing import make_engine
from flowmonkey.tracing import ExecutionTracer, valid_traceparent

from .conftest import FLOWS, Api, gate, noop, wait

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


async def test_steps_after_a_resume_on_another_engine_join_the_callers_trace(
    api: Api, tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stop_a = ExecutionTracer(api.engine, provider).install()
    response = await api["acme"].post(
        "/api/v1/executions",
        json={"flow_id": "approval", "wait": 5},
        headers={"traceparent": PARENT},
    )
    execution = response.json()
    assert execution["status"] == "waiting"
    assert execution["metadata"]["traceparent"] == PARENT
    other = make_engine([noop, wait, gate], FLOWS, store=SqliteStore(tmp_path / "api.db"))
    stop_b = ExecutionTracer(other, provider).install()
    async with other:
        resumed = await other.resume(execution["id"], {"ok": True})
    assert resumed.status.value == "completed"
    stop_a()
    stop_b()
    spans = exporter.get_finished_spans()
    steps = [s for s in spans if s.name.startswith("step ")]
    runs = [s for s in spans if s.name.startswith("execution ")]
    assert [s.name for s in steps] == ["step ask", "step done"]
    assert len(runs) == 2, "one run span per engine that drove it"
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    for run in runs:
        assert format(run.parent.span_id, "016x") == "00f067aa0ba902b7"
    ask, done = steps
    assert ask.parent.span_id == runs[0].context.span_id
    assert done.parent.span_id == runs[1].context.span_id
    assert (
        dict(done.attributes).items()
        >= {
            "flowmonkey.execution_id": execution["id"],
            "flowmonkey.flow_id": "approval",
            "flowmonkey.flow_version": "1.0.0",
            "flowmonkey.step_id": "done",
            "flowmonkey.attempt": 1,
            "flowmonkey.tenant_id": "acme",
        }.items()
    )
    assert runs[0].attributes["flowmonkey.status"] == "waiting"
    assert runs[1].attributes["flowmonkey.status"] == "completed"


async def test_a_failed_step_span_has_an_error_status(
    api: Api, exporter: InMemorySpanExporter
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stop = ExecutionTracer(api.engine, provider).install()
    await api["acme"].post("/api/v1/executions", json={"flow_id": "gated", "wait": 5})
    stop()
    [step] = [s for s in exporter.get_finished_spans() if s.name == "step g"]
    assert step.status.status_code.name == "ERROR"
    assert step.status.description == "CLOSED"
    # Without a traceparent the run span is a root of its own trace.
    [run] = [s for s in exporter.get_finished_spans() if s.name == "execution gated"]
    assert run.parent is None


def test_only_well_formed_traceparents_are_kept() -> None:
    assert valid_traceparent(PARENT) == PARENT
    assert valid_traceparent(PARENT.upper()) == PARENT
    for bad in ("", "00-xyz", f"ff-{TRACE_ID}-00f067aa0ba902b7-01",
                "00-" + "0" * 32 + "-00f067aa0ba902b7-01", PARENT + "\r\nX: y"):  # fmt: skip
        assert valid_traceparent(bad) is None

"""``delay``: durations, ISO ``until`` and ``${path}``; durable across restarts; fired by
``tick_timers`` (never an in-process sleep)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowmonkey import EngineOptions, ExecutionStatus, FlowBuilder, load_flow
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine, OpenStore
from .support import event_types, noop, recorder, stored


def delay_flow(**config: Any) -> Any:
    return load_flow(
        {
            "id": "nap", "version": "1.0.0", "initialStepId": "nap",
            "steps": {
                "nap": {"id": "nap", "type": "delay", "config": config, "outputKey": "timer",
                        "transitions": {"onSuccess": "after"}},
                "after": {"id": "after", "type": "after"},
            },
        }
    )  # fmt: skip


START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("config", "context", "wake_at"),
    [
        ({"duration": "1d2h30m"}, {}, START + timedelta(days=1, hours=2, minutes=30)),
        ({"duration": 1500}, {}, START + timedelta(milliseconds=1500)),
        ({"duration": "500ms"}, {}, START + timedelta(milliseconds=500)),
        ({"until": "2026-01-03T08:00:00+00:00"}, {}, datetime(2026, 1, 3, 8, tzinfo=UTC)),
        ({"until": "${plan.at}"}, {"plan": {"at": "2026-01-05T00:00:00Z"}},
         datetime(2026, 1, 5, tzinfo=UTC)),
    ],
)  # fmt: skip
async def test_delay_waits_until_due_and_fires_on_tick(
    make: MakeEngine, clock: FakeClock, config: dict[str, Any], context: dict[str, Any],
    wake_at: datetime,
) -> None:  # fmt: skip
    after, seen = recorder("after")
    # long delays: no execution deadline (the default 24h would cancel the execution)
    options = EngineOptions(execution_timeout=None)
    async with make([after], [delay_flow(**config)], options=options) as engine:
        first = await engine.start("nap", context)
        assert first.status is ExecutionStatus.WAITING
        assert first.execution.wake_at == wake_at
        clock.set(wake_at - timedelta(milliseconds=1))
        assert await engine.tick_timers() == []
        assert (await engine.run(first.execution.id)).status is ExecutionStatus.WAITING
        assert seen == []
        clock.set(wake_at)
        assert await engine.tick_timers() == [first.execution.id]
        ticked = await stored(engine, first.execution.id)
        assert ticked.status is ExecutionStatus.PENDING  # tick_timers runs no step
        assert seen == []
        await engine.run_until_idle()
        final = await stored(engine, first.execution.id)
        assert final.status is ExecutionStatus.COMPLETED
        assert len(seen) == 1
        assert final.context["timer"] == {
            "scheduledFor": wake_at.isoformat(),
            "firedAt": wake_at.isoformat(),
        }
        types = await event_types(engine, first.execution.id)
        assert types.index("timer.scheduled") < types.index("timer.fired")


async def test_delay_until_template_with_missing_value_fails_input_error(
    make: MakeEngine,
) -> None:
    after, _ = recorder("after")
    async with make([after], [delay_flow(until="${plan.at}")]) as engine:
        result = await engine.start("nap", {})
        assert result.status is ExecutionStatus.FAILED
        assert result.error is not None and result.error.code == "INPUT_ERROR"


async def test_delay_is_durable_across_a_restart(
    make: MakeEngine, open_store: OpenStore, clock: FakeClock
) -> None:
    after, seen = recorder("after")
    flow = delay_flow(duration="2h")
    async with make([after], [flow]) as first:
        started = await first.start("nap", {})
        assert started.status is ExecutionStatus.WAITING
    clock.advance(timedelta(hours=3))
    # new process: new engine and store object; the flow is registered again
    async with make([after], [flow], store=open_store()) as second:
        assert await second.tick_timers() == [started.execution.id]
        await second.run_until_idle()
        final = await stored(second, started.execution.id)
        assert final.status is ExecutionStatus.COMPLETED
        assert len(seen) == 1


async def test_builder_delay_forms_match_the_file_form() -> None:
    built = (
        FlowBuilder("nap")
        .delay("nap", timedelta(days=1, hours=2, minutes=30), output_key="timer",
               on_success="after")
        .step("after", "after", on_success=None)
        .build()
    )  # fmt: skip
    assert built == delay_flow(duration="1d2h30m")
    until = datetime(2026, 1, 3, 8, tzinfo=UTC)
    built_until = (
        FlowBuilder("nap")
        .delay("nap", until=until, output_key="timer", on_success="after")
        .step("after", "after", on_success=None)
        .build()
    )
    assert built_until == delay_flow(until=until.isoformat())


async def test_run_until_idle_applies_due_timers_itself(make: MakeEngine, clock: FakeClock) -> None:
    async with make([noop], []) as engine:
        flow = FlowBuilder("n2").delay("d", "10m").step("x", "noop", on_success=None).build()
        engine.flows.register(flow)
        first = await engine.start("n2", {})
        clock.advance(timedelta(minutes=10))
        await engine.run_until_idle()
        assert (await stored(engine, first.execution.id)).status is ExecutionStatus.COMPLETED


async def test_a_delay_longer_than_the_default_wait_timeout_still_fires(
    make: MakeEngine, clock: FakeClock
) -> None:
    """A 30-day ``delay`` is a timer, not a wait for outside input: the engine-wide
    ``wait_timeout`` (default 7 days) must not turn it into a TIMEOUT failure."""
    after, seen = recorder("after")
    options = EngineOptions(execution_timeout=None)
    async with make([after], [delay_flow(duration="30d")], options=options) as engine:
        first = await engine.start("nap", {})
        assert first.status is ExecutionStatus.WAITING
        clock.advance(timedelta(days=8))
        await engine.run_until_idle()
        mid = await stored(engine, first.execution.id)
        assert mid.status is ExecutionStatus.WAITING, mid.error
        clock.advance(timedelta(days=22))
        await engine.run_until_idle()
        final = await stored(engine, first.execution.id)
        assert final.status is ExecutionStatus.COMPLETED, final.error
        assert len(seen) == 1

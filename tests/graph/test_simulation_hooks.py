"""Simulation (``engine.simulate`` and ``mode="simulation"``) and lifecycle hooks."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import EngineOptions, ExecutionStatus, FlowBuilder, Result
from flowmonkey.model.events import Event

from .conftest import MakeEngine
from .support import recorder, stored


def order_flow() -> Any:
    return (
        FlowBuilder("order")
        .step("charge", "charge", output_key="payment", on_failure="refund")
        .switch("route", cases=[("payment.big", "review")], default="ship")
        .user_task("review", "Review", role="boss", output_key="review",
                   ports={"ok": "ship", "no": None})
        .step("ship", "ship", on_success=None)
        .step("refund", "refund", on_success=None)
        .build()
    )  # fmt: skip


async def _count(engine: Any) -> tuple[int, int]:
    page = await engine.list(limit=1000)
    tasks = await engine.tasks(status=None)
    return len(page.items), len(tasks)


async def test_simulate_follows_outcomes_and_touches_nothing(make: MakeEngine) -> None:
    charge, charged = recorder("charge")
    ship, shipped = recorder("ship")
    async with make([charge, ship], [order_flow()]) as engine:
        await engine.start("order", {})  # one real execution already in the store
        real_before = await _count(engine)
        charged.clear()
        shipped.clear()

        sim = await engine.simulate("order", {"x": 1})  # passthroughs everywhere
        assert sim.status is ExecutionStatus.COMPLETED
        assert sim.path == ["charge", "route", "ship"]

        failing = await engine.simulate(
            "order", {}, outcomes={"charge": Result.failure("DECLINED", "no", retryable=False)}
        )
        assert failing.path == ["charge", "refund"]
        assert failing.status is ExecutionStatus.COMPLETED
        assert failing.execution.last_error is not None
        assert failing.execution.last_error.code == "DECLINED"

        big = await engine.simulate(
            "order", {},
            outcomes={"charge": lambda ctx: Result.success({"big": True}),
                      "ship": Result.success({"label": "L1"})},
            signals={"review": {"port": "ok", "payload": {"by": "sim"}}},
        )  # fmt: skip
        assert big.path == ["charge", "route", "review", "ship"]
        assert big.status is ExecutionStatus.COMPLETED
        assert big.context["payment"] == {"big": True}
        assert big.context["review"] == {"by": "sim"}

        stuck = await engine.simulate("order", {}, outcomes={"charge": Result.success({"big": 1})})
        assert stuck.status is ExecutionStatus.WAITING  # no signal given: left waiting
        assert stuck.path[-1] == "review"

        scripted = {"userTask": Result.success(port="no"), "charge": Result.success({"big": 1})}
        by_type = await engine.simulate("order", {}, outcomes=scripted)
        assert by_type.path == ["charge", "route", "review"]
        assert by_type.status is ExecutionStatus.COMPLETED

        assert charged == [] and shipped == []  # real handlers never ran
        assert await _count(engine) == real_before  # nothing written to the store


async def test_simulation_mode_engine_uses_passthrough_handlers(make: MakeEngine) -> None:
    charge, charged = recorder("charge", lambda ctx: Result.failure("REAL", "real handler"))
    options = EngineOptions(mode="simulation")
    flow = (
        FlowBuilder("plain")
        .step("charge", "charge")
        .step("unregistered", "nobody-registered-this")
        .switch("route", cases=[("go", "ship")], default=None)
        .step("ship", "ship", on_success=None)
        .build()
    )
    async with make([charge], [flow], options=options) as engine:
        result = await engine.start("plain", {"go": True})
        assert result.status is ExecutionStatus.COMPLETED, result.error
        assert charged == []
        steps = [h.step_id for h in (await stored(engine, result.execution.id)).history]
        assert steps == ["charge", "unregistered", "route", "ship"]


# -- lifecycle hooks -------------------------------------------------------------------------


def hook_flow() -> Any:
    return FlowBuilder("hooked").step("a", "maybe", on_success=None).build()


@pytest.mark.parametrize("kind", ["complete", "fail", "cancel"])
async def test_hooks_run_after_the_terminal_commit(make: MakeEngine, kind: str) -> None:
    async def maybe(ctx: Any) -> Result:
        if ctx.context.get("fail"):
            return Result.failure("NOPE", "nope", retryable=False)
        if ctx.context.get("wait"):
            return Result.wait()
        return Result.success({"ok": 1}, next_step=None)

    from flowmonkey import handler

    seen: list[tuple[str, Any, Any]] = []
    async with make([handler("maybe")(maybe)], [hook_flow()]) as engine:

        async def on_complete(execution: Any) -> None:
            persisted = await engine.get(execution.id)
            seen.append(("complete", execution.status, persisted.status if persisted else None))

        def on_fail(execution: Any) -> None:
            seen.append(("fail", execution.status, execution.error.code))

        async def on_cancel(execution: Any) -> None:
            persisted = await engine.get(execution.id)
            seen.append(("cancel", execution.status, persisted.status if persisted else None))

        engine.add_hooks("hooked", on_complete=on_complete, on_fail=on_fail,
                         on_cancel=on_cancel)  # fmt: skip
        context = {"fail": kind == "fail", "wait": kind == "cancel"}
        result = await engine.start("hooked", context)
        if kind == "cancel":
            assert seen == []
            await engine.cancel(result.execution.id)
        expected = {
            "complete": ("complete", ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED),
            "fail": ("fail", ExecutionStatus.FAILED, "NOPE"),
            "cancel": ("cancel", ExecutionStatus.CANCELLED, ExecutionStatus.CANCELLED),
        }[kind]
        assert seen == [expected]


async def test_a_raising_hook_is_reported_and_never_undoes_the_commit(
    make: MakeEngine,
) -> None:
    noop2, _ = recorder("maybe", lambda ctx: Result.success())
    errors: list[Event] = []
    async with make([noop2], [hook_flow()]) as engine:
        engine.on("error", errors.append)
        later: list[str] = []

        def broken(execution: Any) -> None:
            raise RuntimeError("hook exploded")

        engine.add_hooks("hooked", on_complete=broken)
        engine.add_hooks("hooked", on_complete=lambda ex: later.append(ex.id))
        result = await engine.start("hooked", {})
        assert result.status is ExecutionStatus.COMPLETED
        assert (await stored(engine, result.execution.id)).status is ExecutionStatus.COMPLETED
        assert len(errors) == 1
        err = errors[0]
        assert err.type == "error"
        assert err.data["execution_id"] == result.execution.id
        assert err.data["hook"] == "on_complete"
        assert "hook exploded" in err.data["error"]
        assert later == [result.execution.id]  # the next hook still ran

"""step, start, list, get, version pinning, create errors, recover_stale."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import ExecutionStatus, FlowBuilder, Result, errors
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine
from .support import capture, event_types, noop, wait_forever


def three() -> Any:
    return (
        FlowBuilder("f")
        .step("a", "noop")
        .step("b", "wait", on_success="c")
        .step("c", "noop")
        .build()
    )


async def test_step_runs_exactly_one_step(make: MakeEngine) -> None:
    async with make([noop, wait_forever], [three()]) as engine:
        execution_id = (await engine.create("f", {})).execution.id
        first = await engine.step(execution_id)
        assert (first.step_id, first.outcome, first.next_step_id) == ("a", "success", "b")
        assert not first.status.is_terminal
        assert first.status is not ExecutionStatus.WAITING
        stored = await engine.get(execution_id)
        assert stored is not None
        assert [h.step_id for h in stored.history] == ["a"]
        assert stored.current_step_id == "b"
        # It stays runnable for anyone.
        assert stored.status in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
        second = await engine.step(execution_id)
        assert (second.step_id, second.outcome) == ("b", "wait")
        assert second.status is ExecutionStatus.WAITING
        idle = await engine.step(execution_id)
        assert (idle.step_id, idle.outcome) == (None, None)
        assert idle.status is ExecutionStatus.WAITING
        await engine.resume(execution_id, {})
        done = await engine.step(execution_id)
        assert done.outcome is None and done.status is ExecutionStatus.COMPLETED
        assert done.execution.id == execution_id


async def test_start_is_create_plus_run(make: MakeEngine) -> None:
    async with make([noop, wait_forever], [three()]) as engine:
        result = await engine.start(
            "f", {"x": 1}, tenant_id="t", correlation_id="c", metadata={"m": 1}
        )
        assert result.status is ExecutionStatus.WAITING
        execution = result.execution
        assert (execution.tenant_id, execution.correlation_id) == ("t", "c")
        assert execution.metadata == {"m": 1}
        assert execution.context == {"x": 1}
        assert result.execution == await engine.get(execution.id)


async def test_get_unknown_is_none(make: MakeEngine) -> None:
    async with make([noop], [three()]) as engine:
        assert await engine.get("nope") is None
        with pytest.raises(errors.ExecutionNotFound):
            await engine.run("nope")


async def test_create_unknown_flow_or_version(make: MakeEngine) -> None:
    async with make([noop], [three()]) as engine:
        with pytest.raises(errors.FlowNotFound) as info:
            await engine.create("ghost", {})
        assert info.value.code == "FLOW_NOT_FOUND"
        with pytest.raises(errors.FlowNotFound):
            await engine.create("f", {}, version="9.9.9")
        assert (await engine.list()).items == []


async def test_list_filters(make: MakeEngine, clock: FakeClock) -> None:
    other = FlowBuilder("g").step("s", "noop").build()
    async with make([noop, wait_forever], [three(), other]) as engine:
        waiting = (await engine.start("f", {}, tenant_id="t1", correlation_id="c1")).execution
        clock.advance(1)
        done = (await engine.start("g", {}, tenant_id="t2")).execution
        clock.advance(1)
        pending = (await engine.create("f", {}, tenant_id="t1")).execution

        async def ids(**kw: Any) -> list[str]:
            return [e.id for e in (await engine.list(**kw)).items]

        assert await ids() == [pending.id, done.id, waiting.id]
        assert await ids(status="waiting") == [waiting.id]
        assert await ids(status=["completed", "pending"]) == [pending.id, done.id]
        assert await ids(status=ExecutionStatus.COMPLETED) == [done.id]
        assert await ids(flow_id="f") == [pending.id, waiting.id]
        assert await ids(tenant_id="t1") == [pending.id, waiting.id]
        assert await ids(correlation_id="c1") == [waiting.id]
        assert await ids(flow_id="g", tenant_id="t1") == []


async def test_list_cursor_pagination(make: MakeEngine, clock: FakeClock) -> None:
    async with make([noop], [three()]) as engine:
        created = []
        for i in range(5):
            created.append((await engine.create("f", {"i": i})).execution.id)
            clock.advance(1)
        seen: list[str] = []
        cursor = None
        sizes = []
        while True:
            page = await engine.list(limit=2, cursor=cursor)
            sizes.append(len(page.items))
            seen.extend(e.id for e in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sizes == [2, 2, 1]
        assert seen == list(reversed(created))


async def test_list_cursor_with_equal_timestamps(make: MakeEngine) -> None:
    async with make([noop], [three()]) as engine:
        created = {(await engine.create("f", {})).execution.id for _ in range(5)}
        first = await engine.list(limit=3)
        second = await engine.list(limit=3, cursor=first.next_cursor)
        got = [e.id for e in first.items + second.items]
        assert len(got) == 5 and set(got) == created
        assert second.next_cursor is None


async def test_version_pinning(make: MakeEngine) -> None:
    v1 = (
        FlowBuilder("p", version="1.0.0")
        .step("w", "wait", on_success="old")
        .step("old", "noop")
        .build()
    )
    v2 = (
        FlowBuilder("p", version="2.0.0")
        .step("w", "wait", on_success="new")
        .step("new", "noop")
        .build()
    )
    async with make([noop, wait_forever], [v1]) as engine:
        pinned = (await engine.start("p", {})).execution
        assert pinned.flow_version == "1.0.0"
        engine.flows.register(v2)
        result = await engine.resume(pinned.id, {})
        assert result.status is ExecutionStatus.COMPLETED
        assert [h.step_id for h in result.execution.history] == ["w", "old"]
        fresh = await engine.start("p", {})
        assert fresh.execution.flow_version == "2.0.0"
        done = await engine.resume(fresh.execution.id, {})
        assert [h.step_id for h in done.execution.history] == ["w", "new"]
        chosen = await engine.create("p", {}, version="1.0.0")
        assert chosen.execution.flow_version == "1.0.0"


async def test_semver_latest_not_string_order(make: MakeEngine) -> None:
    flows = [
        FlowBuilder("p", version=v).step("s", "noop").build() for v in ("9.0.0", "10.0.0", "2.5.0")
    ]
    async with make([noop], flows) as engine:
        assert (await engine.create("p", {})).execution.flow_version == "10.0.0"


async def test_recover_stale(make: MakeEngine, clock: FakeClock) -> None:
    h, seen = capture("work", result=lambda ctx: Result.success(ctx.run_number))
    flow = FlowBuilder("r").step("s", "work", output_key="ran_in").build()
    async with make([h], [flow]) as engine:
        execution_id = (await engine.create("r", {})).execution.id
        acquired = await engine.store.acquire(
            execution_id, owner="dead", now=clock.now(), lease_for=timedelta(seconds=1)
        )
        assert acquired.lease is not None
        assert acquired.execution.status is ExecutionStatus.RUNNING
        # While the dead worker's lease is live nothing is recovered or run.
        assert await engine.recover_stale() == []
        blocked = await engine.run(execution_id)
        assert blocked.status is ExecutionStatus.RUNNING
        assert seen == []
        clock.advance(2)
        assert await engine.recover_stale() == [execution_id]
        stored = await engine.get(execution_id)
        assert stored is not None
        assert stored.run_number == 2
        assert stored.status is not ExecutionStatus.COMPLETED
        types = await event_types(engine, execution_id)
        assert types.count("execution.recovered") == 1
        assert await engine.recover_stale() == []
        result = await engine.run(execution_id)
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.context == {"ran_in": 2}
        assert result.execution.history[0].run_number == 2
        assert (await engine.get(execution_id)).run_number == 2  # type: ignore[union-attr]


async def test_run_takes_over_expired_lease_as_new_run(make: MakeEngine, clock: FakeClock) -> None:
    h, _ = capture("work", result=lambda ctx: Result.success(ctx.run_number))
    flow = FlowBuilder("r").step("s", "work", output_key="ran_in").build()
    async with make([h], [flow]) as engine:
        execution_id = (await engine.create("r", {})).execution.id
        await engine.store.acquire(
            execution_id, owner="dead", now=clock.now(), lease_for=timedelta(seconds=1)
        )
        clock.advance(2)
        result = await engine.run(execution_id)
        assert result.status is ExecutionStatus.COMPLETED
        assert result.execution.run_number == 2
        assert result.execution.context == {"ran_in": 2}
        assert "execution.recovered" in await event_types(engine, execution_id)

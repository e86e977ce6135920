"""Parallel fork / join (all, any): concurrency, per-branch commits, events, cancelling
the losers of an ``any`` join, and resuming only the unfinished branches after a crash."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import ExecutionStatus, FlowBuilder, Result, handler
from flowmonkey.engine.engine import Engine
from flowmonkey.model.flow import Flow
from flowmonkey.stores.base import StepCommit
from flowmonkey.testing import FakeClock

from .conftest import MakeEngine, OpenStore
from .support import events, noop, recorder, stored

TIMEOUT = 10.0  # generous: a deadlock fails the test instead of hanging it


def fork_flow(branch_types: list[str], mode: str = "all", flow_id: str = "par") -> Flow:
    """start -> fork(b0..bn, each one step of the given type) -> join(mode) -> after."""
    names = [f"b{i}" for i in range(len(branch_types))]
    b = FlowBuilder(flow_id).parallel("fork", names)
    for name, type_ in zip(names, branch_types, strict=True):
        if type_ == "userTask":
            b.user_task(name, f"task {name}", role="clerk", output_key=name, on_success="join")
        elif type_ == "waitForSignal":
            b.wait_for_signal(name, output_key=name, on_success="join")
        else:
            b.step(name, type_, config={"name": name}, output_key=name, on_success="join")
    b.join("join", mode=mode)  # type: ignore[arg-type]
    b.step("after", "after", on_success=None)
    return b.build()


def spy_commits(engine: Engine) -> list[StepCommit]:
    """Record every commit the engine makes (after it is stored)."""
    seen: list[StepCommit] = []
    original = engine.store.commit

    async def commit(lease: Any, change: StepCommit) -> None:
        await original(lease, change)
        seen.append(change)

    engine.store.commit = commit  # type: ignore[method-assign]
    return seen


async def test_branches_run_concurrently(make: MakeEngine) -> None:
    a_started, b_started = asyncio.Event(), asyncio.Event()

    @handler("left")
    async def left(ctx: Any) -> Result:
        a_started.set()
        await b_started.wait()  # deadlocks unless "right" runs at the same time
        return Result.success("L")

    @handler("right")
    async def right(ctx: Any) -> Result:
        b_started.set()
        await a_started.wait()
        return Result.success("R")

    after, seen = recorder("after")
    async with make([left, right, after], [fork_flow(["left", "right"])]) as engine:
        result = await asyncio.wait_for(engine.start("par", {}), TIMEOUT)
        assert result.status is ExecutionStatus.COMPLETED, result.error
        assert (result.context["b0"], result.context["b1"]) == ("L", "R")
        assert len(seen) == 1  # the join continued exactly once


async def test_each_branch_step_commits_separately(make: MakeEngine) -> None:
    after, _ = recorder("after")
    flow = fork_flow(["echo2", "echo2", "echo2"])
    echo2, _ = recorder("echo2", lambda ctx: Result.success(ctx.config["name"]))
    async with make([echo2, after], [flow]) as engine:
        commits = spy_commits(engine)
        result = await engine.start("par", {})
        assert result.status is ExecutionStatus.COMPLETED, result.error
        per_commit = [[h.step_id for h in c.history] for c in commits]
        branch_steps = {"b0", "b1", "b2"}
        for branch in sorted(branch_steps):
            carrying = [ids for ids in per_commit if branch in ids]
            # exactly one commit carries the branch step's record ...
            assert len(carrying) == 1, per_commit
            # ... and it is that step's own commit, not shared with another branch step
            assert set(carrying[0]) & branch_steps == {branch}, per_commit
        # the joined execution stored every branch output
        final = await stored(engine, result.execution.id)
        assert {k: final.context[k] for k in ("b0", "b1", "b2")} == {
            "b0": "b0",
            "b1": "b1",
            "b2": "b2",
        }
        # arrivals are token moves; the merge is the join's one history record
        assert [h.step_id for h in final.history].count("join") == 1


async def test_fork_and_join_events(make: MakeEngine) -> None:
    after, _ = recorder("after")
    async with make([noop, after], [fork_flow(["noop", "noop"])]) as engine:
        result = await engine.start("par", {})
        assert result.status is ExecutionStatus.COMPLETED
        forked = await events(engine, result.execution.id, "token.forked")
        joined = await events(engine, result.execution.id, "token.joined")
        assert len(forked) == 1 and len(joined) == 1
        assert forked[0].data["step_id"] == "fork"
        assert forked[0].data["branches"] == ["b0", "b1"]
        assert joined[0].data["step_id"] == "join"
        assert joined[0].data["mode"] == "all"
        assert sorted(joined[0].data["token_ids"]) == sorted(forked[0].data["token_ids"])
        assert joined[0].data["dropped"] == []
        assert forked[0].sequence < joined[0].sequence


async def test_join_all_waits_for_every_branch(make: MakeEngine) -> None:
    after, seen = recorder("after")
    async with make([noop, after], [fork_flow(["noop", "waitForSignal", "noop"])]) as engine:
        first = await engine.start("par", {})
        assert first.status is ExecutionStatus.WAITING
        assert seen == []
        ex = await stored(engine, first.execution.id)
        waits = sorted((t.step_id, t.wait_kind) for t in ex.tokens if t.status == "waiting")
        assert waits == [("b1", "signal"), ("join", "join"), ("join", "join")]
        done = await engine.signal(first.execution.id, "b1", payload={"ok": 1})
        assert done.status is ExecutionStatus.COMPLETED, done.error
        assert done.context["b1"] == {"ok": 1}
        assert len(seen) == 1


async def test_join_any_continues_on_first_and_cancels_a_running_loser(
    make: MakeEngine,
) -> None:
    never = asyncio.Event()
    loser_started = asyncio.Event()
    loser_cancelled = asyncio.Event()

    @handler("slow")
    async def slow(ctx: Any) -> Result:
        loser_started.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            loser_cancelled.set()
            raise
        return Result.success("slow")

    @handler("fast")
    async def fast(ctx: Any) -> Result:
        await loser_started.wait()  # make sure the loser is really running
        return Result.success("fast")

    after, seen = recorder("after")
    async with make([slow, fast, after], [fork_flow(["slow", "fast"], mode="any")]) as engine:
        result = await asyncio.wait_for(engine.start("par", {}), TIMEOUT)
        assert result.status is ExecutionStatus.COMPLETED, result.error
        assert loser_cancelled.is_set()
        assert result.context.get("b1") == "fast"
        assert "b0" not in result.context
        assert len(seen) == 1
        joined = await events(engine, result.execution.id, "token.joined")
        assert len(joined) == 1 and joined[0].data["mode"] == "any"
        assert len(joined[0].data["dropped"]) == 1


async def test_join_any_cancels_the_losers_pending_user_task(make: MakeEngine) -> None:
    after, seen = recorder("after")
    async with make([noop, after], [fork_flow(["userTask", "noop"], mode="any")]) as engine:
        result = await engine.start("par", {})
        assert result.status is ExecutionStatus.COMPLETED, result.error
        tasks = await engine.tasks(execution_id=result.execution.id, status=None)
        assert [(t.step_id, t.status) for t in tasks] == [("b0", "cancelled")]
        assert await engine.tasks(role="clerk") == []
        cancelled = await events(engine, result.execution.id, "task.cancelled")
        assert [e.data["task_id"] for e in cancelled] == [tasks[0].id]
        assert len(seen) == 1


async def test_join_any_winner_is_a_task_and_the_signal_loser_is_dropped(
    make: MakeEngine,
) -> None:
    from flowmonkey.errors import InvalidSignal

    after, seen = recorder("after")
    flow = fork_flow(["userTask", "waitForSignal"], mode="any")
    async with make([after], [flow]) as engine:
        first = await engine.start("par", {})
        assert first.status is ExecutionStatus.WAITING
        (task,) = await engine.tasks(execution_id=first.execution.id)
        done = await engine.complete_task(task.id, output={"x": 1}, user_id="ann")
        assert done.status is ExecutionStatus.COMPLETED, done.error
        assert len(seen) == 1
        with pytest.raises(InvalidSignal):
            await engine.signal(first.execution.id, "b1", payload={})
        assert len(seen) == 1


async def test_restart_with_a_branch_waiting_on_a_task_does_not_rerun_finished_branch(
    make: MakeEngine, open_store: OpenStore
) -> None:
    pack, packed = recorder("pack", lambda ctx: Result.success("packed"))
    after, seen = recorder("after")
    flow = fork_flow(["pack", "userTask"])
    first = make([pack, after], [flow])
    async with first:
        started = await first.start("par", {})
        assert started.status is ExecutionStatus.WAITING
        assert len(packed) == 1
    execution_id = started.execution.id
    # A new process: new engine, new store object over the same data.
    second = make([pack, after], [flow], store=open_store())
    async with second:
        (task,) = await second.tasks(execution_id=execution_id)
        done = await second.complete_task(task.id, output={"ok": True}, user_id="u1")
        assert done.status is ExecutionStatus.COMPLETED, done.error
        assert len(packed) == 1  # the finished branch did not run again
        assert done.context["b0"] == "packed"
        assert done.context["b1"] == {"ok": True}
        assert len(seen) == 1


async def test_crash_mid_branch_resumes_only_the_unfinished_branch(
    make: MakeEngine, open_store: OpenStore, clock: FakeClock
) -> None:
    """A process dies while one branch's handler runs and the other branch has
    committed: recovery re-runs only the unfinished branch."""
    hang = asyncio.Event()
    pack, packed = recorder("pack", lambda ctx: Result.success("packed"))
    label_calls: list[int] = []
    label_started = asyncio.Event()

    @handler("label")
    async def label(ctx: Any) -> Result:
        label_calls.append(ctx.attempt)
        if len(label_calls) == 1:
            label_started.set()
            await hang.wait()  # the "process" dies while this runs
        return Result.success("labelled")

    after, seen = recorder("after")
    flow = fork_flow(["pack", "label"])
    first = make([pack, label, after], [flow])
    await first.initialize()
    commits = spy_commits(first)
    packed_committed = asyncio.Event()
    original = first.store.commit

    async def watch(lease: Any, change: StepCommit) -> None:
        await original(lease, change)
        if any(h.step_id == "b0" for h in change.history):
            packed_committed.set()

    first.store.commit = watch  # type: ignore[method-assign]
    created = await first.create("par", {})
    runner = asyncio.ensure_future(first.run(created.execution.id))
    await asyncio.wait_for(asyncio.gather(label_started.wait(), packed_committed.wait()), TIMEOUT)
    runner.cancel()  # crash: no further commit, the lease is never released
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert commits is not None
    crashed = await stored(first, created.execution.id)
    assert crashed.status is ExecutionStatus.RUNNING
    assert len(packed) == 1

    clock.advance(timedelta(minutes=10))  # past the lease and stale_after
    second = make([pack, label, after], [flow], store=open_store())
    try:
        async with second:  # automatic recovery in initialize()
            await second.run_until_idle()
            final = await stored(second, created.execution.id)
            assert final.status is ExecutionStatus.COMPLETED, final.error
            assert len(packed) == 1  # committed branch not re-run
            assert len(label_calls) == 2  # the unfinished branch ran again
            assert final.run_number == 2
            assert final.context["b0"] == "packed" and final.context["b1"] == "labelled"
            assert len(seen) == 1
            assert await events(second, created.execution.id, "execution.recovered")
    finally:
        if first.store is not second.store:
            await first.store.close()


async def test_join_any_loser_task_is_cancelled_before_the_flow_ends(make: MakeEngine) -> None:
    """The flow keeps waiting after the ``any`` join: the dropped branch's task must
    already be ``cancelled`` then (not only when the execution finally ends)."""
    flow = (
        FlowBuilder("par-hold")
        .parallel("fork", ["task", "quick"])
        .user_task("task", "slow review", role="clerk", on_success="join")
        .step("quick", "noop", on_success="join")
        .join("join", mode="any")
        .wait_for_signal("hold", on_success=None)
        .build()
    )
    async with make([noop], [flow]) as engine:
        result = await engine.start("par-hold", {})
        assert result.status is ExecutionStatus.WAITING, result.error
        ex = await stored(engine, result.execution.id)
        assert [t.step_id for t in ex.tokens if t.status == "waiting"] == ["hold"]
        tasks = await engine.tasks(execution_id=result.execution.id, status=None)
        assert [(t.step_id, t.status) for t in tasks] == [("task", "cancelled")]
        assert len(await events(engine, result.execution.id, "task.cancelled")) == 1


async def test_completion_after_a_join_runs_hooks_and_delivers_every_event(
    make: MakeEngine,
) -> None:
    """The execution completes inside the concurrent branch runner: the terminal commit
    must still be followed by listeners and lifecycle hooks."""
    after, _ = recorder("after")
    async with make([noop, after], [fork_flow(["noop", "noop"])]) as engine:
        completed: list[str] = []
        delivered: list[int] = []
        engine.add_hooks("par", on_complete=lambda ex: completed.append(ex.id))
        engine.on("*", lambda e: delivered.append(e.sequence))
        result = await engine.start("par", {})
        assert result.status is ExecutionStatus.COMPLETED
        persisted = [e.sequence for e in await engine.events(result.execution.id)]
        assert delivered == persisted
        assert completed == [result.execution.id]


async def test_a_child_with_parallel_branches_wakes_its_parent(make: MakeEngine) -> None:
    after, _ = recorder("after")
    parent = FlowBuilder("parent").subflow("sub", "par", on_success=None).build()
    async with make([noop, after], [parent, fork_flow(["noop", "noop"])]) as engine:
        started = await engine.start("parent", {})
        assert started.status is ExecutionStatus.WAITING
        await engine.run_until_idle()  # no clock advance: the child's end must wake it
        final = await stored(engine, started.execution.id)
        assert final.status is ExecutionStatus.COMPLETED, final.error

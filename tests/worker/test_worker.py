"""The in-process ``Worker`` over SQLite and PostgreSQL (real time, short intervals)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowmonkey import Engine, EngineOptions, FlowBuilder, HandlerRegistry, Result, handler
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.flow import Flow
from flowmonkey.worker import Worker, WorkerOptions
from worker.support import (
    Backend,
    create_many,
    eventually,
    statuses,
    success_counts,
    wait_all_done,
)

FAST = {"poll_interval": 0.2, "scheduler_interval": 0.05, "reaper_interval": 0.5}


def make_engine(backend: Backend, handlers: Iterable[Any], flows: Iterable[Flow],
                **options: Any) -> Engine:  # fmt: skip
    registry = HandlerRegistry()
    for h in handlers:
        registry.register(h)
    engine = Engine(backend.store(), registry, options=EngineOptions(**options))
    for flow in flows:
        engine.flows.register(flow)
    return engine


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``worker`` in a task; stop it (and check it stopped cleanly) afterwards."""
    task = asyncio.create_task(worker.run(handle_signals=False))
    try:
        await eventually(lambda: _ready(worker, task), timeout=10, what="the worker to start")
        yield task
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=15)


async def _ready(worker: Worker, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # surface a startup failure
    return worker.state == "running"


class Tracker:
    """Counts concurrent handler calls."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.calls = 0

    def handler(self, sleep: float) -> Any:
        @handler("track")
        async def track(ctx: Any) -> Result:
            self.calls += 1
            self.now += 1
            self.peak = max(self.peak, self.now)
            try:
                await asyncio.sleep(sleep)
            finally:
                self.now -= 1
            return Result.success()

        return track


async def test_completes_200_flows_with_concurrency_8(backend: Backend) -> None:
    tracker = Tracker()
    flow = FlowBuilder("two").step("a", "track").step("b", "track").build()
    engine = make_engine(backend, [tracker.handler(0.005)], [flow])
    async with engine:
        ids = await create_many(engine, "two", 200)
        worker = Worker(engine, WorkerOptions(concurrency=8, **FAST))
        started = time.monotonic()
        async with running(worker):
            await wait_all_done(engine.store, 200, timeout=60)
        elapsed = time.monotonic() - started
        counts = await success_counts(engine.store, ids)
    assert set(counts.values()) == {1} and len(counts) == 400
    assert tracker.calls == 400
    assert 2 <= tracker.peak <= 8, tracker.peak
    assert worker.in_flight == 0
    print(f"{backend.name}: 200 two-step flows in {elapsed:.2f}s")


async def test_the_engine_gets_its_own_settings_back_after_the_worker(backend: Backend) -> None:
    """A worker lends the engine its id and lease length only while it runs."""
    engine = make_engine(backend, [], [], lease_for=timedelta(seconds=30))
    async with engine:
        before = (engine.owner, engine.options, engine.wake_signaler)
        worker = Worker(engine, WorkerOptions(lease_for=timedelta(seconds=2), **FAST))
        async with running(worker):
            assert engine.owner == worker.worker_id
            assert engine.options.lease_for == timedelta(seconds=2)
        assert (engine.owner, engine.options, engine.wake_signaler) == before


async def test_timers_and_wait_timeouts_fire(backend: Backend) -> None:
    """A durable delay and a signal wait that times out both resume via the worker."""
    ran: dict[str, float] = {}

    @handler("stamp")
    async def stamp(ctx: Any) -> Result:
        ran[f"{ctx.execution_id}:{ctx.step.id}"] = time.monotonic()
        return Result.success()

    delayed = FlowBuilder("delayed").step("a", "stamp").delay("pause", "200ms").step("b", "stamp")
    waits = (
        FlowBuilder("waits")
        .wait_for_signal("w", signal="go", timeout="200ms", on_timeout="late")
        .step("late", "stamp", on_success=None)
        .build()
    )
    engine = make_engine(backend, [stamp], [delayed.build(), waits])
    async with engine:
        worker = Worker(engine, WorkerOptions(concurrency=4, **FAST))
        async with running(worker):
            created = time.monotonic()
            delayed_ids = await create_many(engine, "delayed", 3)
            wait_ids = await create_many(engine, "waits", 3)
            await wait_all_done(engine.store, 6, timeout=20)
        for eid in delayed_ids:
            assert ran[f"{eid}:b"] - ran[f"{eid}:a"] >= 0.2
        for eid in wait_ids:
            assert ran[f"{eid}:late"] - created >= 0.2
            execution = await engine.get(eid)
            assert execution is not None and execution.status is ExecutionStatus.COMPLETED


async def test_stop_lets_in_flight_steps_finish(backend: Backend) -> None:
    started = asyncio.Event()
    finished: list[str] = []
    in_handler = 0

    @handler("slow")
    async def slow(ctx: Any) -> Result:
        nonlocal in_handler
        in_handler += 1
        if in_handler == 3:
            started.set()
        await asyncio.sleep(0.5)
        finished.append(ctx.execution_id)
        return Result.success()

    flow = FlowBuilder("slow").step("s", "slow").build()
    engine = make_engine(backend, [slow], [flow], lease_for=timedelta(seconds=30))
    async with engine:
        ids = await create_many(engine, "slow", 3)
        worker = Worker(engine, WorkerOptions(concurrency=3, shutdown_grace=10, **FAST))
        task = asyncio.create_task(worker.run(handle_signals=False))
        await asyncio.wait_for(started.wait(), timeout=10)
        worker.stop()
        stop_began = time.monotonic()
        await asyncio.wait_for(task, timeout=10)
        assert time.monotonic() - stop_began < 2
        assert sorted(finished) == sorted(ids)
        counts = await statuses(engine.store)
        assert counts == {"completed": 3}
        # Nothing is left leased: another worker can take anything at once.
        claimed = await engine.store.claim(
            owner="other", now=engine.clock.now(), lease_for=timedelta(seconds=5), limit=10
        )
        assert claimed == []


async def test_stop_cancels_steps_after_the_grace_and_frees_their_leases(
    backend: Backend,
) -> None:
    started = asyncio.Event()
    cancelled: list[str] = []

    @handler("stuck")
    async def stuck(ctx: Any) -> Result:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(ctx.execution_id)
            raise
        return Result.success()

    flow = FlowBuilder("stuck").step("s", "stuck").build()
    engine = make_engine(backend, [stuck], [flow], lease_for=timedelta(seconds=30))
    async with engine:
        [eid] = await create_many(engine, "stuck", 1)
        worker = Worker(engine, WorkerOptions(concurrency=2, shutdown_grace=0.3, **FAST))
        task = asyncio.create_task(worker.run(handle_signals=False))
        await asyncio.wait_for(started.wait(), timeout=10)
        worker.stop()
        stop_began = time.monotonic()
        await asyncio.wait_for(task, timeout=10)
        assert 0.25 <= time.monotonic() - stop_began < 3
        assert cancelled == [eid]
        # The lease was ended, not left to run out its 30 s: it is recoverable now.
        [acquired] = await engine.store.claim(
            owner="other", now=engine.clock.now(), lease_for=timedelta(seconds=5), limit=10
        )
        assert acquired.execution.id == eid and acquired.recovered


async def test_two_workers_share_one_store_without_duplicate_commits(backend: Backend) -> None:
    tracker = Tracker()
    flow = FlowBuilder("three").step("a", "track").step("b", "track").step("c", "track").build()
    engines = [make_engine(backend, [tracker.handler(0.002)], [flow]) for _ in range(2)]
    async with engines[0], engines[1]:
        ids = await create_many(engines[0], "three", 100)
        workers = [Worker(e, WorkerOptions(concurrency=4, **FAST)) for e in engines]
        async with running(workers[0]), running(workers[1]):
            await wait_all_done(engines[0].store, 100, timeout=60)
        counts = await success_counts(engines[0].store, ids)
    assert len(counts) == 300 and set(counts.values()) == {1}
    assert tracker.calls == 300
    assert all(w.started > 0 for w in workers), [w.started for w in workers]


async def test_a_wake_signal_starts_work_before_the_poll_interval(backend: Backend) -> None:
    """On PostgreSQL the store NOTIFYs; on SQLite an in-process signaler stands in."""
    done = asyncio.Event()

    @handler("ping")
    async def ping(ctx: Any) -> Result:
        done.set()
        return Result.success()

    flow = FlowBuilder("ping").step("p", "ping").build()
    engine = make_engine(backend, [ping], [flow])
    signaler = None if backend.name == "postgres" else LocalSignaler()
    async with engine:
        options = WorkerOptions(concurrency=2, poll_interval=30, reaper_interval=30)
        worker = Worker(engine, options, wake_signaler=signaler)
        async with running(worker):
            await eventually(lambda: _listening(worker), timeout=10, what="the subscription")
            client = make_engine(backend, [ping], [flow])
            client.wake_signaler = signaler
            async with client:
                began = time.monotonic()
                await client.create("ping")
                await asyncio.wait_for(done.wait(), timeout=10)
                assert time.monotonic() - began < 5


async def _listening(worker: Worker) -> bool:
    return worker.listening and worker.last_poll_at is not None


class LocalSignaler:
    """A ``WakeSignaler`` inside one process (tests only)."""

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.event = asyncio.Event()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def notify(self, execution_id: str) -> None:
        self.pending.append(execution_id)
        self.event.set()

    async def wait(self, timeout: float) -> list[str]:
        if not self.pending:
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), timeout)
            except TimeoutError:
                return []
        out, self.pending = self.pending, []
        return out


@pytest.mark.parametrize("bad", ["concurrency", "poll_interval"])
def test_options_are_validated(bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        WorkerOptions(**{bad: 0})


def test_default_worker_ids_are_unique() -> None:
    assert WorkerOptions().worker_id != WorkerOptions().worker_id


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_heartbeats_keep_long_steps_leased_with_many_in_flight(
    backend: Backend, sync: bool
) -> None:
    """Handlers outlive the lease several times over, 4 at once per worker, while a second
    worker is eager to take over expired leases: nobody takes over, nothing re-runs."""
    calls: list[str] = []

    if sync:

        def long(ctx: Any) -> Result:
            calls.append(ctx.execution_id)
            time.sleep(1.0)
            return Result.success()

    else:

        async def long(ctx: Any) -> Result:
            calls.append(ctx.execution_id)
            await asyncio.sleep(1.0)
            return Result.success()

    flow = FlowBuilder("long").step("s", "long").build()
    lease = timedelta(seconds=0.3)
    engines = [
        make_engine(backend, [handler("long")(long)], [flow], lease_for=lease) for _ in range(2)
    ]
    async with engines[0], engines[1]:
        ids = await create_many(engines[0], "long", 8)
        workers = [Worker(e, WorkerOptions(concurrency=4, **FAST)) for e in engines]
        async with running(workers[0]), running(workers[1]):
            await wait_all_done(engines[0].store, 8, timeout=30)
        counts = await success_counts(engines[0].store, ids)
        recovered = [
            e
            for eid in ids
            for e in await engines[0].events(eid)
            if e.type == "execution.recovered"
        ]
    assert sorted(calls) == sorted(ids)
    assert set(counts.values()) == {1}
    assert recovered == []


async def test_long_runs_of_quick_steps_keep_their_lease(backend: Backend) -> None:
    """No handler ever suspends, yet each execution takes longer than its lease: the
    worker's own heartbeats keep it, so the other worker never takes one over."""

    @handler("instant")
    async def instant(ctx: Any) -> Result:
        return Result.success()

    builder = FlowBuilder("quick")
    for i in range(300):
        builder.step(f"s{i}", "instant")
    flow = builder.build()
    lease = timedelta(seconds=0.25)
    engines = [
        make_engine(backend, [instant], [flow], lease_for=lease, max_steps=5000) for _ in range(2)
    ]
    async with engines[0], engines[1]:
        ids = await create_many(engines[0], "quick", 4)
        workers = [Worker(e, WorkerOptions(concurrency=4, **FAST)) for e in engines]
        async with running(workers[0]), running(workers[1]):
            await wait_all_done(engines[0].store, 4, timeout=60)
        runs = [(await engines[0].store.get(eid, history=False)) for eid in ids]
    assert [r.run_number if r else None for r in runs] == [1, 1, 1, 1]


@pytest.mark.redis
async def test_redis_wake_signals_cross_processes(redis_url: str, tmp_path: Path) -> None:
    """A client engine announces over Redis; the idle worker (30 s poll) starts at once."""
    from flowmonkey.coordination.redis import RedisWakeSignaler

    done = asyncio.Event()

    @handler("ping")
    async def ping(ctx: Any) -> Result:
        done.set()
        return Result.success()

    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'redis.db'}")
    channel = f"flowmonkey:test:{uuid.uuid4().hex}"
    flow = FlowBuilder("ping").step("p", "ping").build()
    engine = make_engine(backend, [ping], [flow])
    async with engine:
        worker = Worker(
            engine,
            WorkerOptions(concurrency=2, poll_interval=30, reaper_interval=30),
            wake_signaler=RedisWakeSignaler(redis_url, channel=channel),
        )
        async with running(worker):
            await eventually(lambda: _listening(worker), timeout=10, what="the subscription")
            client = make_engine(backend, [ping], [flow])
            client.wake_signaler = RedisWakeSignaler(redis_url, channel=channel)
            async with client:
                began = time.monotonic()
                await client.create("ping")
                await asyncio.wait_for(done.wait(), timeout=10)
                assert time.monotonic() - began < 5
            await client.wake_signaler.close()


async def test_claims_only_executions_whose_flow_and_handlers_it_has(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9, item 3: work this worker cannot run is never leased, changed or failed
    (no FLOW_NOT_FOUND / HANDLER_NOT_FOUND); it is counted and reported instead."""

    @handler("work")
    async def work(ctx: Any) -> Result:
        return Result.success()

    @handler("other")
    async def other(ctx: Any) -> Result:
        return Result.success()

    runnable = FlowBuilder("runnable").step("a", "work").build()
    no_handler = FlowBuilder("no-handler").step("a", "work").step("b", "other").build()
    unknown = FlowBuilder("unknown").step("a", "work").build()
    creator = make_engine(backend, [work, other], [runnable, no_handler, unknown])
    async with creator:
        ours = await create_many(creator, "runnable", 3)
        theirs = [
            (await creator.create("no-handler", {})).execution.id,
            (await creator.create("unknown", {})).execution.id,
        ]
        before = {i: await creator.get(i) for i in theirs}
        engine = make_engine(backend, [work], [runnable, no_handler])
        async with engine:
            worker = Worker(engine, WorkerOptions(concurrency=4, **FAST))
            caplog.set_level("WARNING", logger="flowmonkey.worker")
            async with running(worker):
                await wait_all_done(engine.store, 3, timeout=30)

                async def surveyed() -> bool:
                    return worker.unrunnable == 2

                await eventually(surveyed, timeout=10, what="the survey of unrunnable work")
                assert worker.health()[1]["unrunnable"] == 2
                # Announced while it listens (PostgreSQL NOTIFY): taken by id, found
                # unrunnable, given back once, and not taken again on its own re-announce.
                late = (await creator.create("no-handler", {})).execution.id

                async def counted() -> bool:
                    return worker.unrunnable == 3

                await eventually(counted, timeout=10, what="the survey to count it")
                assert worker.started == 3  # never started driving it
        late_ex = await creator.get(late)
        assert late_ex is not None and late_ex.status is ExecutionStatus.PENDING
        assert late_ex.error is None and late_ex.history == []
        assert late_ex.started_at is None
        for execution_id in ours:
            got = await creator.get(execution_id)
            assert got is not None and got.status is ExecutionStatus.COMPLETED
        for execution_id in theirs:
            # Untouched: same row (not even given back: updated_at unchanged).
            assert await creator.get(execution_id) == before[execution_id]
        messages = " | ".join(r.getMessage() for r in caplog.records)
        assert (
            'no-handler@1.0.0 left for another worker: this worker has no handler for "other"'
            in (messages)
        )
        assert "unknown@1.0.0 left for another worker: this worker does not have the flow" in (
            messages
        )
        # A worker that has them runs them.
        worker = Worker(creator, WorkerOptions(concurrency=4, **FAST))
        async with running(worker):
            await wait_all_done(creator.store, 6, timeout=30)


class _DeafToCancel:
    """A wake signaler whose ``wait`` swallows a cancellation, as ``asyncio.wait_for``
    can on Python 3.11 when the cancel arrives as its timeout fires."""

    def __init__(self) -> None:
        self.waits = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def notify(self, execution_id: str) -> None:
        return None

    async def wait(self, timeout: float) -> list[str]:
        self.waits += 1
        try:
            await asyncio.sleep(timeout)
        except asyncio.CancelledError:
            pass  # lost, as in the race
        return []


async def test_a_worker_stops_even_when_its_wake_listener_ignores_cancellation(
    tmp_path: Path,
) -> None:
    backend = Backend("sqlite", f"sqlite:///{tmp_path / 'deaf.db'}")
    engine = make_engine(backend, [], [])
    signaler = _DeafToCancel()
    async with engine:
        options = WorkerOptions(concurrency=1, poll_interval=0.05, reaper_interval=30)
        worker = Worker(engine, options, wake_signaler=signaler)
        running = asyncio.create_task(worker.run(handle_signals=False))
        while signaler.waits < 2:  # listening
            await asyncio.sleep(0)
        worker.stop()
        # Before the fix the listener looped forever and run() never returned.
        await asyncio.wait_for(running, 10)
        assert worker.health()[1]["status"] == "stopped"

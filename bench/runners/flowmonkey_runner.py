# ruff: noqa: ASYNC220, ASYNC230, ASYNC240, SIM115  (harness: spawning/killing worker processes)
"""flowmonkey runner (runs in the project venv, /work/main/.venv).

Same flows and the same ~100 B no-op step as the peers.

In-process mode (W1-W3b, W7): one ``Engine`` in this process; ``start`` is
``engine.start`` (create + run inline, like ``DBOS.start_workflow``); ``signal`` is
``engine.signal`` (the resumed step runs inline in the caller); timers are driven by a
``flowmonkey.worker.Worker(engine, concurrency=C)`` task in this process. Waiting for a
result that did not come back from ``start``/``signal`` listens to the engine's
terminal events (no polling).

Worker mode (W3 cross-process, W4, W5): ``n`` subprocesses (``--worker``) each running
``Worker(engine, concurrency=C).run()`` on the same store; this process only
``engine.create``s, ``engine.signal(..., run_next=False)``s (the resumed step then runs
on a worker: LISTEN/NOTIFY wakes it on Postgres, it polls on SQLite) and reads results
with ONE shared poller (``store.get`` of the pending ids, one at a time, every 2 ms) --
not one polling loop per handle, which would load the database more than the workers
do. A SIGKILLed worker's executions are picked up again after the lease expires
(``stale_after``, set to 2 s here).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.workloads import EXEC_COUNTS, MARKS, Adapter, Handle, kill_pid, noop_output, side_effect

CHAIN_SIZES = (1, 3, 10, 100)
STALE_AFTER = timedelta(seconds=2)
TERMINAL = {"completed", "failed", "cancelled"}


def flow_defs() -> list[dict[str, Any]]:
    """FlowMonkey-shaped definitions (load_flow input) for every bench flow."""

    def chain(fid: str, k: int, typ: str) -> dict[str, Any]:
        steps = {}
        for i in range(k):
            steps[f"s{i}"] = {"id": f"s{i}", "type": typ, "config": {"step": i},
                              "input": {"type": "full"},
                              "outputKey": f"out.s{i}" if typ == "bench-side" else "last",
                              "transitions": {"onSuccess": f"s{i + 1}" if i + 1 < k else None}}
        return {"id": fid, "version": "1.0.0", "initialStepId": "s0", "steps": steps}

    defs = [chain(f"chain-{k}", k, "bench-noop") for k in CHAIN_SIZES]
    defs += [chain(f"side-{k}", k, "bench-side") for k in (3, 10)]
    defs.append({"id": "signal", "version": "1.0.0", "initialStepId": "mark", "steps": {
        "mark": {"id": "mark", "type": "bench-mark", "input": {"type": "full"},
                 "outputKey": "marked", "transitions": {"onSuccess": "wait"}},
        "wait": {"id": "wait", "type": "waitForSignal", "config": {"signal": "go"},
                 "outputKey": "signal", "transitions": {"onResume": "finish",
                                                        "onSuccess": "finish"}},
        "finish": {"id": "finish", "type": "bench-noop", "config": {"step": 1},
                   "outputKey": "last", "transitions": {"onSuccess": None}}}})
    defs.append({"id": "sleep", "version": "1.0.0", "initialStepId": "t0", "steps": {
        "t0": {"id": "t0", "type": "bench-now", "outputKey": "t0",
               "transitions": {"onSuccess": "nap"}},
        "nap": {"id": "nap", "type": "bench-sleep", "input": {"type": "full"},
                "transitions": {"onResume": "t1", "onSuccess": "t1"}},
        "t1": {"id": "t1", "type": "bench-now", "outputKey": "t1",
               "transitions": {"onSuccess": None}}}})
    defs.append({"id": "idem", "version": "1.0.0", "initialStepId": "s0", "steps": {
        "s0": {"id": "s0", "type": "bench-idem", "input": {"type": "full"},
               "outputKey": "last", "transitions": {"onSuccess": None}}}})
    return defs


def build_engine(store_url: str, worker: bool = False) -> Any:
    from flowmonkey import (
        Engine,
        EngineOptions,
        FlowRegistry,
        HandlerRegistry,
        Result,
        SqliteStore,
        handler,
        load_flow,
        open_store,
    )

    @handler("bench-noop")
    async def bench_noop(ctx: Any) -> Any:
        return Result.success(noop_output(int((ctx.config or {}).get("step", 0))))

    @handler("bench-mark")
    async def bench_mark(ctx: Any) -> Any:
        MARKS.add(ctx.input["run"])
        return Result.success(noop_output(0))

    @handler("bench-now")
    async def bench_now(ctx: Any) -> Any:
        return Result.success(time.time())

    @handler("bench-sleep")
    async def bench_sleep(ctx: Any) -> Any:
        # a durable timer (the built-in `delay` step takes no per-execution duration)
        return Result.wait(delay=timedelta(milliseconds=int(ctx.input["sleep_ms"])))

    @handler("bench-side")
    async def bench_side(ctx: Any) -> Any:
        inp = ctx.input
        step = int(ctx.config["step"])
        side_effect(inp["side"], inp["run"], step)
        if inp.get("sleep_ms"):
            await asyncio.sleep(inp["sleep_ms"] / 1000)
        return Result.success(noop_output(step))

    @handler("bench-idem")
    async def bench_idem(ctx: Any) -> Any:
        EXEC_COUNTS[ctx.input["run"]] += 1
        return Result.success(noop_output(0))

    handlers = HandlerRegistry()
    for h in (bench_noop, bench_mark, bench_now, bench_sleep, bench_side, bench_idem):
        handlers.register(h)
    flows = FlowRegistry()
    for d in flow_defs():
        flows.register(load_flow(d))
    if store_url.startswith("sqlite:///"):
        store = SqliteStore(store_url[len("sqlite:///"):], synchronous="FULL")
    else:
        store = open_store(store_url)
    opts = EngineOptions(stale_after=STALE_AFTER)
    return Engine(store, handlers, flows, options=opts)


WORKER_POLL_S = 0.05  # same tuning as the DBOS queue (default 1.0 s)


def make_worker(engine: Any, concurrency: int) -> Any:
    from flowmonkey.worker import Worker
    from flowmonkey.worker.options import WorkerOptions

    return Worker(engine, WorkerOptions(concurrency=concurrency, poll_interval=WORKER_POLL_S,
                                        lease_for=STALE_AFTER, shutdown_grace=1.0))


def flow_id(flow: str, input: dict[str, Any]) -> str:
    if flow in ("chain", "side"):
        return f"{flow}-{input['steps']}"
    return flow


def flow_input(flow: str, input: dict[str, Any]) -> dict[str, Any]:
    if flow == "sleep":
        return {**input, "sleep_ms": int(input["sleep_s"] * 1000)}
    return input


class FlowmonkeyAdapter(Adapter):
    name = "flowmonkey"

    def __init__(self, workdir: Path, pg_dsn: str | None) -> None:
        super().__init__(workdir, pg_dsn)
        from importlib.metadata import version

        self.version = version("flowmonkey")
        self.store_url = ""
        self.engine: Any = None
        self.worker: Any = None
        self.worker_task: asyncio.Task[Any] | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.cross_process_signal = True  # W3 cross-process variant supported
        self._terminal: set[str] = set()  # in-process: ids whose terminal event was seen
        self._waiters: dict[str, asyncio.Future[None]] = {}  # in-process waits
        self._polled: dict[str, asyncio.Future[Any]] = {}  # worker mode: shared poller
        self._poller: asyncio.Task[None] | None = None

    def _on_terminal(self, event: Any) -> None:
        eid = event.execution_id
        self._terminal.add(eid)
        fut = self._waiters.pop(eid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def setup(self, backend: str) -> None:
        await super().setup(backend)
        if backend == "postgres":
            assert self.pg_dsn
            self.store_url = self.pg_dsn
        else:
            self.store_url = f"sqlite:///{self.workdir / 'flowmonkey.sqlite'}"
        self.engine = build_engine(self.store_url)
        await self.engine.__aenter__()  # open/migrate the store
        for ev in ("execution.completed", "execution.failed", "execution.cancelled"):
            self.engine.on(ev, self._on_terminal)
        self.notes.update({"stale_after_s": STALE_AFTER.total_seconds(),
                           "worker": f"WorkerOptions(poll_interval={WORKER_POLL_S}, "
                                     f"lease_for={STALE_AFTER.total_seconds()}s), else defaults",
                           "sqlite_synchronous": "FULL" if backend == "sqlite" else None})

    async def start(self, flow: str, input: dict[str, Any], key: str | None = None) -> Handle:
        fid, inp = flow_id(flow, input), flow_input(flow, input)
        if self.procs:
            # worker mode: only persist; the worker processes run it
            created = await self.engine.create(fid, inp, idempotency_key=key)
            return Handle(created.execution.id, flow)
        rr = await self.engine.start(fid, inp, idempotency_key=key)
        return Handle(rr.execution.id, flow, extra=rr)

    async def signal(self, handle: Handle, name: str, payload: Any) -> None:
        if self.procs:  # cross-process: commit the resume, a worker runs the next step
            await self.engine.signal(handle.id, "wait", payload=payload, run_next=False)
            handle.extra = None
            return
        handle.extra = await self.engine.signal(handle.id, "wait", payload=payload)

    async def wait_parked(self, handles: list[Handle], timeout: float = 60.0) -> None:
        """Worker mode: wait until every execution is ``waiting`` (at its signal)."""
        end = time.time() + timeout
        todo = [h.id for h in handles]
        while todo:
            ex = await self.engine.store.get(todo[-1], history=False)
            if ex is not None and str(ex.status) == "waiting":
                todo.pop()
                continue
            if time.time() > end:
                raise TimeoutError(f"{len(todo)} executions never reached their wait")
            await asyncio.sleep(0.01)

    async def result(self, handle: Handle, timeout: float = 120.0) -> Any:
        rr = handle.extra
        if rr is not None and str(rr.status) in TERMINAL:
            return self._checked(rr.execution)
        if self.procs:
            return await asyncio.wait_for(self._poll(handle.id), timeout)
        # in-process: the terminal event of this engine (the worker task or a signal
        # drove it here); then one read for the output
        if handle.id not in self._terminal:
            fut = self._waiters.get(handle.id)
            if fut is None:
                fut = self._waiters[handle.id] = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        ex = await self.engine.store.get(handle.id, history=False)
        return self._checked(ex)

    def _checked(self, ex: Any) -> Any:
        if ex is None or str(ex.status) != "completed":
            raise RuntimeError(f"{getattr(ex, 'id', '?')} {getattr(ex, 'status', 'missing')}: "
                               f"{getattr(ex, 'error', None)}")
        return self._output(ex)

    def _poll(self, eid: str) -> asyncio.Future[Any]:
        fut = self._polled.get(eid)
        if fut is None:
            fut = self._polled[eid] = asyncio.get_running_loop().create_future()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_loop())
        return fut

    async def _poll_loop(self) -> None:
        """One reader for every pending result in worker mode: ``store.get`` of each
        pending id in turn, then 2 ms of rest (10 ms when many are pending, so the
        reader does not eat the CPU the workers need on a 2-core box)."""
        while self._polled:
            for eid in list(self._polled):
                fut = self._polled.get(eid)
                if fut is None:
                    continue
                if fut.done():  # cancelled (timeout)
                    self._polled.pop(eid, None)
                    continue
                ex = await self.engine.store.get(eid, history=False)
                if ex is not None and str(ex.status) in TERMINAL:
                    self._polled.pop(eid, None)
                    try:
                        fut.set_result(self._checked(ex))
                    except RuntimeError as e:
                        fut.set_exception(e)
            await asyncio.sleep(0.002 if len(self._polled) <= 4 else 0.01)

    async def stored_executions(self, flow: str) -> int:
        """How many executions of ``flow`` the store holds (W7 cross-check)."""
        n, cursor = 0, None
        while True:
            page = await self.engine.list(flow_id=flow_id(flow, {}), limit=500, cursor=cursor)
            n += len(page.items)
            cursor = page.next_cursor
            if not cursor:
                return n

    @staticmethod
    def _output(ex: Any) -> Any:
        ctx = dict(ex.context)
        if "t0" in ctx and "t1" in ctx:
            return {"t0": ctx["t0"], "t1": ctx["t1"]}
        return ctx.get("last", ctx)

    async def start_workers(self, n: int, concurrency: int, inprocess: bool = True) -> None:
        if inprocess:
            if self.worker is None:
                self.worker = make_worker(self.engine, concurrency)
                self.worker_task = asyncio.create_task(self.worker.run(handle_signals=False))
            return
        root = str(Path(__file__).resolve().parents[2])
        for i in range(n):
            ready = self.workdir / f"fm_w{i}.ready"
            cmd = [sys.executable, "-m", "bench.runners.flowmonkey_runner", "--worker",
                   "--store", self.store_url, "--concurrency", str(concurrency),
                   "--ready", str(ready)]
            log = open(self.workdir / f"fm_worker_w{i}.log", "ab")
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                               cwd=root))
        end = time.time() + 60
        for i in range(n):
            while not (self.workdir / f"fm_w{i}.ready").exists():
                if time.time() > end:
                    raise TimeoutError("flowmonkey worker did not start")
                await asyncio.sleep(0.05)

    async def kill_workers(self) -> None:
        for i, p in enumerate(self.procs):
            kill_pid(p.pid)
            p.wait()
            (self.workdir / f"fm_w{i}.ready").unlink(missing_ok=True)
        self.procs = []

    async def stop_workers(self) -> None:
        await self.kill_workers()
        if self.worker is not None:
            res = self.worker.stop()
            if asyncio.iscoroutine(res):
                await res
            if self.worker_task is not None:
                try:  # graceful (shutdown_grace = 1 s), else cancel
                    await asyncio.wait_for(self.worker_task, 3.0)
                except (asyncio.CancelledError, Exception):
                    pass
            self.worker = None
            self.worker_task = None

    async def teardown(self) -> None:
        await self.stop_workers()
        if self._poller is not None:
            self._poller.cancel()
        if self.engine is not None:
            await self.engine.__aexit__(None, None, None)


async def worker_main(store_url: str, concurrency: int, ready: Path) -> None:
    # equivalent to `flowmonkey --store URL worker --concurrency N --handlers MODULE`,
    # with the bench flows registered in the engine
    engine = build_engine(store_url, worker=True)
    async with engine:
        w = make_worker(engine, concurrency)
        task = asyncio.create_task(w.run(handle_signals=False))
        await asyncio.sleep(0.2)
        ready.touch()
        await task


def engine_available() -> str | None:
    """None when the engine API the adapter needs is importable, else the reason."""
    try:
        import flowmonkey

        for n in ("Engine", "EngineOptions", "SqliteStore", "open_store", "HandlerRegistry",
                  "FlowRegistry", "handler", "Result", "load_flow"):
            if not hasattr(flowmonkey, n):
                return f"flowmonkey.{n} missing"
        import flowmonkey.worker as fw

        if not hasattr(fw, "Worker"):
            return "flowmonkey.worker.Worker missing"
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


if __name__ == "__main__":
    if "--check" in sys.argv:
        reason = engine_available()
        print(reason or "ok")
        sys.exit(0 if reason is None else 1)
    if "--worker" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--worker", action="store_true")
        ap.add_argument("--store", required=True)
        ap.add_argument("--concurrency", type=int, default=16)
        ap.add_argument("--ready", required=True)
        a = ap.parse_args()
        asyncio.run(worker_main(a.store, a.concurrency, Path(a.ready)))
    else:
        from bench.runners.common import runner_main

        runner_main(FlowmonkeyAdapter)

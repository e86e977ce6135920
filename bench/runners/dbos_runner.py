# ruff: noqa: ASYNC220, ASYNC230, ASYNC240, SIM115  (harness: spawning/killing worker processes)
"""DBOS Transact runner (runs in bench/.venvs/dbos).

In-process mode (W1-W3b, W7): DBOS is launched inside this process (executor
``runner``, listening to no queue) and flows are started with
``DBOS.start_workflow_async`` -- the way DBOS is meant to be embedded.

Worker mode (W4, W5): ``start_workers(n)`` spawns ``n`` processes
(``python -m bench.runners.dbos_runner --worker ...``), each launching DBOS with its
own executor id (``w0``, ``w1``) and dequeuing from the queue ``workers``; this
process submits with ``DBOSClient.enqueue_async`` and reads results with the client.
A killed worker is restarted with the same executor id, so DBOS recovers its
PENDING workflows on launch.

Settings: DBOS defaults everywhere (SQLite: DBOS's own connection settings --
rollback journal, ``synchronous`` left at SQLite's default FULL, IMMEDIATE
transactions; Postgres: LISTEN/NOTIFY on), except the worker queue's
``polling_interval_sec`` = 0.05 (default 1.0), recorded in the notes.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSClient, DBOSConfig, SetWorkflowID

from bench.workloads import EXEC_COUNTS, MARKS, Adapter, Handle, kill_pid, noop_output, side_effect

APP = "bench"
APP_VERSION = "bench-1"
WORKER_QUEUE = "workers"
QUEUE_POLL_S = 0.05


# ---------------------------------------------------------------------------
# Steps and workflows (same no-op step as every other system)
# ---------------------------------------------------------------------------


@DBOS.step()
async def noop(step: int) -> dict[str, Any]:
    return noop_output(step)


@DBOS.step()
async def mark(run: str) -> dict[str, Any]:
    MARKS.add(run)
    return noop_output(0)


@DBOS.step()
async def now_step() -> float:
    return time.time()


@DBOS.step()
async def side_step(side: str, run: str, step: int, sleep_ms: int) -> dict[str, Any]:
    side_effect(side, run, step)
    if sleep_ms:
        await asyncio.sleep(sleep_ms / 1000)
    return noop_output(step)


@DBOS.step()
async def idem_step(run: str) -> dict[str, Any]:
    EXEC_COUNTS[run] += 1
    return noop_output(0)


@DBOS.workflow()
async def chain(inp: dict[str, Any]) -> dict[str, Any]:
    for i in range(inp["steps"]):
        await noop(i)
    return noop_output(inp["steps"])


@DBOS.workflow()
async def signal_flow(inp: dict[str, Any]) -> dict[str, Any]:
    await mark(inp["run"])
    msg = await DBOS.recv_async("go", timeout_seconds=600)
    if msg is None:
        raise RuntimeError("signal timed out")
    await noop(1)
    return noop_output(2)


@DBOS.workflow()
async def sleep_flow(inp: dict[str, Any]) -> dict[str, Any]:
    t0 = await now_step()
    await DBOS.sleep_async(inp["sleep_s"])
    t1 = await now_step()
    return {"t0": t0, "t1": t1}


@DBOS.workflow()
async def side_flow(inp: dict[str, Any]) -> dict[str, Any]:
    for i in range(inp["steps"]):
        await side_step(inp["side"], inp["run"], i, inp["sleep_ms"])
    return noop_output(inp["steps"])


@DBOS.workflow()
async def idem_flow(inp: dict[str, Any]) -> dict[str, Any]:
    await idem_step(inp["run"])
    return noop_output(1)


FLOWS = {"chain": chain, "signal": signal_flow, "sleep": sleep_flow, "side": side_flow,
         "idem": idem_flow}


def make_config(url: str, executor_id: str) -> DBOSConfig:
    return {
        "name": APP,
        "system_database_url": url,
        "executor_id": executor_id,
        "application_version": APP_VERSION,
        "log_level": "WARNING",
    }


def sys_url(backend: str, workdir: Path, pg_dsn: str | None) -> str:
    if backend == "postgres":
        assert pg_dsn
        return pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{workdir / 'dbos_sys.sqlite'}"


# ---------------------------------------------------------------------------
# Adapter
# ---------------------------------------------------------------------------


class DbosAdapter(Adapter):
    name = "dbos"

    def __init__(self, workdir: Path, pg_dsn: str | None) -> None:
        super().__init__(workdir, pg_dsn)
        from importlib.metadata import version

        self.version = version("dbos")
        self.url = ""
        self.client: DBOSClient | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.worker_conc = 16
        self.inproc_conc = 16

    async def setup(self, backend: str) -> None:
        await super().setup(backend)
        self.url = sys_url(backend, self.workdir, self.pg_dsn)
        DBOS(config=make_config(self.url, "runner"))
        DBOS.listen_queues([])  # the runner never dequeues worker-queue flows
        DBOS.launch()
        # register the worker queue once (workers re-register it on launch)
        await DBOS.register_queue_async(WORKER_QUEUE, worker_concurrency=16,
                                        polling_interval_sec=QUEUE_POLL_S)
        self.client = DBOSClient(system_database_url=self.url, application_name=APP)
        self.notes["queue_polling_interval_sec"] = QUEUE_POLL_S
        if backend == "sqlite":
            db = str(self.workdir / "dbos_sys.sqlite")
            c = sqlite3.connect(db)
            self.notes["sqlite_journal_mode"] = c.execute("PRAGMA journal_mode").fetchone()[0]
            c.close()
            self.notes["sqlite_synchronous"] = "default (FULL=2); DBOS sets no pragma"
        else:
            self.notes["use_listen_notify"] = True

    # in-process mode ---------------------------------------------------------

    async def start(self, flow: str, input: dict[str, Any], key: str | None = None) -> Handle:
        if self.procs:  # worker mode: enqueue for the worker processes
            assert self.client is not None
            opts: dict[str, Any] = {"workflow_name": FLOWS[flow].dbos_function_name,
                                    "queue_name": WORKER_QUEUE, "app_version": APP_VERSION}
            if key:
                opts["workflow_id"] = key
            h = await self.client.enqueue_async(opts, input)  # type: ignore[arg-type]
            return Handle(h.get_workflow_id(), flow, extra=None)
        if key:
            with SetWorkflowID(key):
                h = await DBOS.start_workflow_async(FLOWS[flow], input)
        else:
            h = await DBOS.start_workflow_async(FLOWS[flow], input)
        return Handle(h.get_workflow_id(), flow, extra=h)

    async def signal(self, handle: Handle, name: str, payload: Any) -> None:
        await DBOS.send_async(handle.id, payload, topic=name)

    async def result(self, handle: Handle, timeout: float = 120.0) -> Any:
        if handle.extra is not None:
            return await asyncio.wait_for(handle.extra.get_result(), timeout)
        assert self.client is not None
        h = await self.client.retrieve_workflow_async(handle.id)
        return await asyncio.wait_for(h.get_result(polling_interval_sec=0.05), timeout)

    async def start_workers(self, n: int, concurrency: int, inprocess: bool = True) -> None:
        if inprocess:
            self.inproc_conc = concurrency  # DBOS runs started workflows at once, unbounded
            return
        self.worker_conc = concurrency
        for i in range(n):
            cmd = [sys.executable, "-m", "bench.runners.dbos_runner", "--worker",
                   "--url", self.url, "--executor", f"w{i}", "--concurrency", str(concurrency),
                   "--workdir", str(self.workdir)]
            log = open(self.workdir / f"dbos_worker_w{i}.log", "ab")
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                               cwd=str(Path(__file__).resolve().parents[2])))
        # wait for the workers to be up (they touch a ready file after launch)
        end = time.time() + 60
        for i in range(n):
            ready = self.workdir / f"dbos_w{i}.ready"
            while not ready.exists():
                if time.time() > end:
                    raise TimeoutError("DBOS worker did not start")
                await asyncio.sleep(0.05)

    async def kill_workers(self) -> None:
        for p in self.procs:
            kill_pid(p.pid)
            p.wait()
        for i in range(len(self.procs)):
            (self.workdir / f"dbos_w{i}.ready").unlink(missing_ok=True)
        self.procs = []

    async def stop_workers(self) -> None:
        await self.kill_workers()

    async def teardown(self) -> None:
        await self.kill_workers()
        if self.client is not None:
            self.client.destroy()
        DBOS.destroy()


# ---------------------------------------------------------------------------
# Worker process
# ---------------------------------------------------------------------------


def worker_main(url: str, executor: str, concurrency: int, workdir: Path) -> None:
    DBOS(config=make_config(url, executor))
    DBOS.listen_queues([WORKER_QUEUE])
    DBOS.launch()
    DBOS.register_queue(WORKER_QUEUE, worker_concurrency=concurrency,
                        polling_interval_sec=QUEUE_POLL_S, on_conflict="always_update")
    (workdir / f"dbos_{executor}.ready").touch()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--worker", action="store_true")
        ap.add_argument("--url", required=True)
        ap.add_argument("--executor", required=True)
        ap.add_argument("--concurrency", type=int, default=16)
        ap.add_argument("--workdir", required=True)
        a = ap.parse_args()
        worker_main(a.url, a.executor, a.concurrency, Path(a.workdir))
    else:
        from bench.runners.common import runner_main

        runner_main(DbosAdapter)

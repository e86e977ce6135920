"""API benchmarks: ``python -m bench api [--runs N] [--n N] [--backends sqlite,postgres]``.

A real ``flowmonkey serve`` subprocess (one uvicorn process) on 127.0.0.1, one client
with a keep-alive connection (stdlib ``http.client``: the cheapest Python client, so the
numbers are the server's), sequential requests. Measured in the same run, each the median
of ``--runs`` runs:

- ``post``: ``POST /api/v1/executions`` with ``wait=0`` against ``serve --no-worker``
  (the API alone: each request validates, authenticates and commits one pending
  execution): requests/s, p50/p99 latency and the server process's CPU per request;
  then the same from one client process with ``--lanes`` (default 4) keep-alive
  connections, each sending its next request as soon as its answer arrives (concurrent
  creates share one durable commit: the API's group create);
- ``start-wait``: ``POST`` with ``wait=5`` of a 3-step no-op flow against ``serve`` with
  its in-process worker (the steps run in the server): the round-trip p50;
- ``engine``: the same 3-step start through ``engine.start`` in this process on a store
  of the same kind: the baseline of the API overhead (``start-wait`` p50 - ``engine`` p50).

Prints a table and writes ``bench/results/api-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.rawhttp import cpu_seconds, in_flight, pct

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
FLOW = """
id: three
version: 1.0.0
initialStepId: a
steps:
  a: {type: noop, transitions: {onSuccess: b}}
  b: {type: noop, transitions: {onSuccess: c}}
  c: {type: noop, transitions: {onSuccess: null}}
"""
HANDLERS = """
from flowmonkey import Result, handler

@handler("noop")
async def noop(ctx):
    return Result.success()
"""
_RUNNING = re.compile(r"Uvicorn running on http://[^:]+:(\d+)")
_KEY = re.compile(r"(fmk_[A-Za-z0-9_\-]+)")
LANES = 4  # requests in flight for the concurrent POST measurement (--lanes)
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")


class Server:
    """A ``flowmonkey serve`` subprocess on a free port."""

    def __init__(self, folder: Path, store: str, *extra: str) -> None:
        exe = Path(sys.executable).parent / "flowmonkey"
        args = [str(exe), "serve", "--store", store, "--port", "0", "--flows", "flow.yaml",
                "--handlers", "handlers.py", "--no-access-log", "--rate-limit", "1000000",
                "--log-level", "WARNING", *extra]  # fmt: skip
        # WARNING hides the startup lines we need: read them at INFO from uvicorn only.
        args[args.index("--log-level") + 1] = "INFO"
        self.proc = subprocess.Popen(args, cwd=folder, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        text = ""
        deadline = time.monotonic() + 60
        while (match := _RUNNING.search(text)) is None:
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError("serve did not start:\n" + text)
            text += line
        self.port = int(match.group(1))
        key = _KEY.search(text)
        self.key = key.group(1) if key else ""
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for _ in self.proc.stderr:
            pass

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def _requests(server: Server, body: bytes, n: int) -> list[float]:
    """``n`` sequential POSTs on one keep-alive connection; latencies in ms."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {server.key}"}
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/api/v1/executions", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        out.append((time.perf_counter() - t0) * 1000)
        if response.status != 201:
            raise RuntimeError(f"{response.status}: {payload[:300]!r}")
    conn.close()
    return out


async def _in_flight(server: Server, body: bytes, n: int, lanes: int) -> list[float]:
    """``n`` POSTs from one client process with ``lanes`` keep-alive connections (raw
    HTTP/1.1, ``bench/rawhttp.py``); latencies in ms."""
    head = (
        "POST /api/v1/executions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {server.key}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    request = head + body
    return await in_flight(server.port, n, lanes, lambda _: request, b"201")


async def _engine_p50(store_url: str, n: int) -> float:
    from flowmonkey.definitions.loader import load_flow
    from flowmonkey.engine.engine import Engine
    from flowmonkey.handlers.registry import HandlerRegistry
    from flowmonkey.model.result import Result
    from flowmonkey.stores import open_store

    handlers = HandlerRegistry()

    async def noop(ctx: Any) -> Result:
        return Result.success()

    handlers.register(noop, type="noop")
    engine = Engine(open_store(store_url), handlers)
    async with engine:
        await engine.save_flow(load_flow(FLOW))
        for _ in range(20):
            await engine.start("three", {})
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            result = await engine.start("three", {})
            times.append((time.perf_counter() - t0) * 1000)
            assert result.status.value == "completed"
    return statistics.median(times)


def _stores(backend: str, folder: Path, tag: str) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{folder / (tag + '.db')}", None
    schema = f"bench_api_{tag}_{os.getpid()}"
    sep = "&" if "?" in PG_ADMIN else "?"
    return f"{PG_ADMIN}{sep}schema={schema}", schema


def _drop(schema: str | None) -> None:
    if schema is None:
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _commit_p50(backend: str, folder: Path) -> float:
    """The store's floor in the same run: one single-row durable commit, p50 ms."""
    times = []
    if backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(folder / "floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (x INTEGER)")
        for i in range(300):
            t0 = time.perf_counter()
            conn.execute("INSERT INTO t VALUES (?)", (i,))
            times.append((time.perf_counter() - t0) * 1000)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute("CREATE TEMP TABLE t (x INTEGER)")
            for i in range(300):
                t0 = time.perf_counter()
                conn.execute("INSERT INTO t VALUES (%s)", (i,))
                times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def one_run(backend: str, n: int, run: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="fm-bench-api-"))
    (folder / "flow.yaml").write_text(FLOW)
    (folder / "handlers.py").write_text(HANDLERS)
    out: dict[str, float] = {}
    schemas: list[str | None] = []
    try:
        out["commit_p50_ms"] = _commit_p50(backend, folder)
        url, schema = _stores(backend, folder, f"post{run}")
        schemas.append(schema)
        server = Server(folder, url, "--no-worker")
        try:
            body = json.dumps({"flow_id": "three", "input": {"n": 1}}).encode()
            _requests(server, body, 200)  # warm-up
            cpu0 = cpu_seconds(server.proc.pid)
            t0 = time.perf_counter()
            lat = _requests(server, body, n)
            elapsed = time.perf_counter() - t0
            out["post_server_cpu_ms"] = (cpu_seconds(server.proc.pid) - cpu0) * 1000 / n
            out["post_rps"] = n / elapsed
            out["post_p50_ms"] = pct(lat, 0.5)
            out["post_p99_ms"] = pct(lat, 0.99)
            # The same client with LANES requests in flight (one keep-alive connection
            # each): concurrent creates share one durable commit (group create).
            cpu0 = cpu_seconds(server.proc.pid)
            t0 = time.perf_counter()
            lat = asyncio.run(_in_flight(server, body, 2 * n, LANES))
            elapsed = time.perf_counter() - t0
            out["conc_server_cpu_ms"] = (cpu_seconds(server.proc.pid) - cpu0) * 1000 / (2 * n)
            out["conc_rps"] = 2 * n / elapsed
            out["conc_p50_ms"] = pct(lat, 0.5)
            out["conc_p99_ms"] = pct(lat, 0.99)
        finally:
            server.stop()
        url, schema = _stores(backend, folder, f"wait{run}")
        schemas.append(schema)
        server = Server(folder, url)
        try:
            body = json.dumps({"flow_id": "three", "wait": 5}).encode()
            _requests(server, body, 50)
            lat = _requests(server, body, max(n // 4, 200))
        finally:
            server.stop()
        out["wait_p50_ms"] = pct(lat, 0.5)
        out["wait_p99_ms"] = pct(lat, 0.99)
        url, schema = _stores(backend, folder, f"engine{run}")
        schemas.append(schema)
        out["engine_p50_ms"] = asyncio.run(_engine_p50(url, max(n // 4, 200)))
        out["overhead_p50_ms"] = out["wait_p50_ms"] - out["engine_p50_ms"]
    finally:
        for schema in schemas:
            _drop(schema)
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _set_lanes(lanes: int) -> None:
    global LANES
    LANES = max(1, lanes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench api", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=2000, help="POSTs per measured batch")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--lanes", type=int, default=LANES,
                    help="requests in flight for the concurrent POST measurement")  # fmt: skip
    args = ap.parse_args(argv)
    _set_lanes(args.lanes)
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(), "n": args.n,
                               "runs": args.runs, "backends": {}}  # fmt: skip
    for backend in args.backends.split(","):
        runs = [one_run(backend, args.n, i) for i in range(args.runs)]
        medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        results["backends"][backend] = {"median": medians, "runs": runs}
        print(f"\n{backend} (median of {args.runs} runs, one client, keep-alive)")
        print(
            f"  POST wait=0 (serve --no-worker): {medians['post_rps']:,.0f} req/s, "
            f"p50 {medians['post_p50_ms']:.2f} ms, p99 {medians['post_p99_ms']:.2f} ms, "
            f"server CPU {medians['post_server_cpu_ms']:.3f} ms/request"
        )
        print(
            f"  POST wait=0, {LANES} in flight:        {medians['conc_rps']:,.0f} req/s, "
            f"p50 {medians['conc_p50_ms']:.2f} ms, p99 {medians['conc_p99_ms']:.2f} ms, "
            f"server CPU {medians['conc_server_cpu_ms']:.3f} ms/request"
        )
        print(
            f"  start-and-wait 3 steps (serve):  p50 {medians['wait_p50_ms']:.2f} ms, "
            f"p99 {medians['wait_p99_ms']:.2f} ms"
        )
        print(f"  engine.start 3 steps in-process: p50 {medians['engine_p50_ms']:.2f} ms")
        print(f"  API overhead at p50:             {medians['overhead_p50_ms']:.2f} ms")
        print(f"  load average (1 min) after:      {os.getloadavg()[0]:.2f}")
        print(
            f"  floor: one durable commit p50    {medians['commit_p50_ms']:.2f} ms "
            f"(POST p50 = {medians['post_p50_ms'] / medians['commit_p50_ms']:.1f}x)"
        )
    out = ROOT / "bench" / "results" / f"api-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0

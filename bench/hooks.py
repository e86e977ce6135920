# ruff: noqa: ASYNC220  (harness: spawning/stopping processes)
"""The ``hooks`` part of ``python -m bench.triggers``: signed webhooks to ``POST /hooks/{id}``.

A uvicorn server (``bench.trigger_app``: no auth, no inline runs, so a hook's cost is
verify HMAC + JSON Schema + ``input_map`` + idempotency + one durable create) on one
SQLite file, and one client process with keep-alive connections:

- sequential: one ``http.client`` connection (the cheapest Python client, as in
  ``bench/api``: the latency is the server's, not the client's);
- 32 in flight: 32 keep-alive connections of one asyncio client writing raw HTTP/1.1
  (httpx's pool spent more CPU per request than the server did: with 32 connections
  on a two-core machine it measured the client).

Besides rates and latencies it reports the server process's CPU time per hook (user +
sys from /proc), which a loaded machine disturbs much less than a rate.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.rawhttp import cpu_seconds, in_flight, pct

__all__ = ["bench_hooks"]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_bench_0123456789"
TRIGGER = {
    "id": "orders",
    "flow_id": "tick",
    "secret": SECRET,
    "input_schema": {
        "type": "object",
        "required": ["order_id"],
        "properties": {"order_id": {"type": "string"}},
    },
    "input_map": "{order: body.order_id}",
    "idempotency": "body:order_id",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hook(n: int, tag: str) -> tuple[bytes, dict[str, str]]:
    from flowmonkey.api.webhooks import sign

    body = json.dumps({"order_id": f"{tag}-{n}-{uuid.uuid4().hex[:8]}"}).encode()
    return body, {"content-type": "application/json", "X-Flowmonkey-Signature": sign(SECRET, body)}


def _connect(port: int) -> http.client.HTTPConnection:
    """A connection to the server once it answers ``/healthz``."""
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
            answer.read()
            if answer.status == 200:
                return conn
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _sequential(port: int, count: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    out = []
    for n in range(count):
        body, headers = _hook(n, "s")
        began = time.perf_counter()
        conn.request("POST", "/hooks/orders", body=body, headers=headers)
        answer = conn.getresponse()
        text = answer.read()
        out.append((time.perf_counter() - began) * 1000)
        if answer.status != 202:
            raise RuntimeError(f"{answer.status}: {text[:300]!r}")
    conn.close()
    return out


def _raw_hook(n: int) -> bytes:
    body, headers = _hook(n, "c")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST /hooks/orders HTTP/1.1\r\nhost: bench\r\n{head}content-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def bench_hooks(requests: int, work: Path, synchronous: str = "FULL") -> dict[str, Any]:
    """Sequential latency and 32-in-flight throughput of signed hooks (see the module)."""
    from bench.trigger_app import tick_flow
    from flowmonkey.engine.engine import Engine
    from flowmonkey.stores.sqlite import SqliteStore

    db = work / f"hooks-{synchronous}.db"
    async with Engine(SqliteStore(db)) as engine:
        await engine.save_flow(tick_flow())
    port = _free_port()
    store = f"sqlite:///{db}" + ("" if synchronous == "FULL" else f"?synchronous={synchronous}")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "BENCH_STORE": store}
    cmd = [sys.executable, "-m", "uvicorn", "bench.trigger_app:make_app", "--factory",
           "--port", str(port), "--log-level", "warning", "--no-access-log",
           "--timeout-keep-alive", "75"]  # fmt: skip
    log = (work / "uvicorn.log").open("ab")
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    lanes = 32
    try:
        conn = _connect(port)
        conn.request(
            "POST",
            "/api/v1/triggers",
            body=json.dumps(TRIGGER),
            headers={"content-type": "application/json"},
        )
        made = conn.getresponse()
        assert made.status == 201, made.read()
        conn.close()
        _sequential(port, 100)  # warm-up
        cpu0 = cpu_seconds(server.pid)
        sequential = _sequential(port, requests // 4)
        cpu1 = cpu_seconds(server.pid)
        began = time.perf_counter()
        concurrent = await in_flight(port, requests, lanes, _raw_hook, b"202")
        rate = requests / (time.perf_counter() - began)
        cpu2 = cpu_seconds(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    return {
        "bench": "hooks",
        "backend": f"sqlite (synchronous={synchronous})",
        "sequential_requests": len(sequential),
        "p50_ms": round(statistics.median(sequential), 2),
        "p99_ms": round(pct(sequential, 0.99), 2),
        "sequential_hooks_per_s": round(len(sequential) / (sum(sequential) / 1000)),
        "server_cpu_ms_per_hook_sequential": round((cpu1 - cpu0) * 1000 / len(sequential), 3),
        "concurrent_requests": requests,
        "in_flight": lanes,
        "hooks_per_s": round(rate),
        "in_flight_p50_ms": round(statistics.median(concurrent), 2),
        "in_flight_p99_ms": round(pct(concurrent, 0.99), 2),
        "server_cpu_ms_per_hook_in_flight": round((cpu2 - cpu1) * 1000 / requests, 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }

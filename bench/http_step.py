"""``python -m bench http [--quick]``: the cost of the engine around one ``http`` step.

Both sides talk to the same local keep-alive server (uvicorn, raw ASGI, in its own
process) in the same run, alternating rounds:

- bare: a loop of the same httpx requests on one ``AsyncClient``;
- engine: a flow of one ``http`` step on a durable SQLite store (``engine.start``),
  i.e. create + claim + the request + commit of every execution;
- no-op: the same flow with a ``set`` step instead (what the durable store costs alone);
- memory: the http flow on the memory store (the engine's and the handler's CPU cost).

Reported: p50 latency of one request vs one execution (sequential), and requests/s with
16 in flight (16 concurrent loops). Medians over rounds; the machine is shared, so the
ratios (taken in the same round) are what to read.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BODY = b'{"id": "A-1", "items": [1, 2, 3], "ok": true}'


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(BODY)).encode())],
        }
    )  # fmt: skip
    await send({"type": "http.response.body", "body": BODY})


def _serve(port: int) -> None:
    import uvicorn

    uvicorn.run(_app, host="127.0.0.1", port=port, log_level="error", access_log=False,
                timeout_keep_alive=60)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_up(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the benchmark server did not start")


async def _bare(url: str, n: int, inflight: int) -> tuple[list[float], float]:
    import httpx

    latencies: list[float] = []
    async with httpx.AsyncClient() as client:
        await client.get(url)  # open the connection(s) outside the measurement

        async def loop(count: int) -> None:
            for _ in range(count):
                t0 = time.perf_counter()
                response = await client.get(url)
                response.json()
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(loop(n // inflight) for _ in range(inflight)))
        wall = time.perf_counter() - t0
    return latencies, len(latencies) / wall


async def _engine(
    url: str, n: int, inflight: int, folder: Path, *, noop: bool = False, memory: bool = False
) -> tuple[list[float], float]:
    from flowmonkey import Engine, EngineOptions, FlowBuilder, FlowRegistry, HandlerRegistry
    from flowmonkey.stores.sqlite import SqliteStore

    if noop:  # the same durable execution without the request: what the store costs
        step = ("set", {"values": {"status": 200, "body": {"id": "A-1"}}})
    else:
        step = ("http", {"url": url})
    flow = FlowBuilder("call").step("get", step[0], config=step[1], output_key="r").build()
    from flowmonkey.stores.memory import MemoryStore

    store: Any = (
        MemoryStore() if memory else SqliteStore(folder / f"bench-{time.monotonic_ns()}.db")
    )
    options = EngineOptions(http_allow=("127.0.0.1",))
    latencies: list[float] = []
    async with Engine(store, HandlerRegistry(), FlowRegistry([flow]), options=options) as engine:
        await engine.start("call", {})  # warm: client, connection, statements

        async def loop(count: int) -> None:
            for _ in range(count):
                t0 = time.perf_counter()
                result = await engine.start("call", {})
                latencies.append(time.perf_counter() - t0)
                if result.status.value != "completed":
                    raise RuntimeError(f"execution failed: {result.error}")

        t0 = time.perf_counter()
        await asyncio.gather(*(loop(n // inflight) for _ in range(inflight)))
        wall = time.perf_counter() - t0
    return latencies, len(latencies) / wall


def _p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def run(quick: bool) -> dict[str, Any]:
    rounds = 3
    seq_n, par_n = (150, 480) if quick else (400, 1600)
    port = _free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    server.start()
    rows: list[dict[str, float]] = []
    try:
        await _wait_up(port)
        url = f"http://127.0.0.1:{port}/order"
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for _ in range(rounds):
                bare_lat, _ = await _bare(url, seq_n, 1)
                eng_lat, _ = await _engine(url, seq_n, 1, folder)
                noop_lat, _ = await _engine(url, seq_n, 1, folder, noop=True)
                mem_lat, _ = await _engine(url, seq_n, 1, folder, memory=True)
                _, bare_rps = await _bare(url, par_n, 16)
                _, eng_rps = await _engine(url, par_n, 16, folder)
                _, noop_rps = await _engine(url, par_n, 16, folder, noop=True)
                _, mem_rps = await _engine(url, par_n, 16, folder, memory=True)
                rows.append(
                    {
                        "bare_p50_ms": _p50_ms(bare_lat),
                        "engine_p50_ms": _p50_ms(eng_lat),
                        "overhead_p50_ms": _p50_ms(eng_lat) - _p50_ms(bare_lat),
                        "noop_step_p50_ms": _p50_ms(noop_lat),
                        "memory_overhead_p50_ms": _p50_ms(mem_lat) - _p50_ms(bare_lat),
                        "bare_rps_16": bare_rps,
                        "engine_rps_16": eng_rps,
                        "rps_ratio": eng_rps / bare_rps,
                        "noop_rps_16": noop_rps,
                        "memory_rps_16": mem_rps,
                    }
                )
    finally:
        server.terminate()
        server.join(5)
    summary = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    load = os.getloadavg()[0]
    return {"rounds": rows, "median": summary, "quick": quick, "load_after": load}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    result = asyncio.run(run(quick))
    m = result["median"]
    print(f"http step, {len(result['rounds'])} rounds (median):")
    print(f"  sequential p50: bare {m['bare_p50_ms']:.3f} ms, engine {m['engine_p50_ms']:.3f} ms,"
          f" overhead {m['overhead_p50_ms']:.3f} ms  (goal <= 1 ms)")  # fmt: skip
    print(f"  the same durable execution with a no-op step instead: {m['noop_step_p50_ms']:.3f} ms"
          f" (the store's share of the overhead)")  # fmt: skip
    print(f"  overhead on the memory store (engine + handler CPU, no fsync):"
          f" {m['memory_overhead_p50_ms']:.3f} ms")  # fmt: skip
    print(f"  16 in flight: bare {m['bare_rps_16']:.0f} req/s, engine {m['engine_rps_16']:.0f}"
          f" exec/s, ratio {m['rps_ratio']:.2f}  (goal >= 0.60)")  # fmt: skip
    print(f"  16 in flight, no-op step on SQLite: {m['noop_rps_16']:.0f} exec/s; http step on"
          f" the memory store: {m['memory_rps_16']:.0f} exec/s")  # fmt: skip
    print(f"  load average after: {result['load_after']:.2f} (2 cores)")
    for i, r in enumerate(result["rounds"], 1):
        print(f"  round {i}: " + ", ".join(f"{k}={v:.3f}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

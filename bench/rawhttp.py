"""Cheap HTTP/1.1 load for the API benchmarks (``bench/api``, ``bench/hooks.py``).

httpx's pool costs more CPU per request than the server does, so on a two-core machine
it measures the client; these helpers write raw requests on keep-alive asyncio streams.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["cpu_seconds", "in_flight", "pct"]


async def in_flight(
    port: int, count: int, lanes: int, request: Callable[[int], bytes], status: bytes
) -> list[float]:
    """``count`` requests over ``lanes`` keep-alive connections to 127.0.0.1:``port``,
    each lane sending its next request when the previous answer arrived; latencies in
    ms. ``request(n)`` gives the bytes of request ``n``; an answer whose status line does
    not start with ``HTTP/1.1 <status>`` raises."""
    latencies: list[float] = []
    expected = b"HTTP/1.1 " + status

    async def lane(numbers: range) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in numbers:
            data = request(n)
            began = time.perf_counter()
            writer.write(data)
            answer = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in answer.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            text = await reader.readexactly(length)
            latencies.append((time.perf_counter() - began) * 1000)
            if not answer.startswith(expected):
                raise RuntimeError(f"{answer!r} {text[:300]!r}")
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(lane(range(k, count, lanes)) for k in range(lanes)))
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (a loaded machine disturbs a
    request's CPU time much less than its latency)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

"""``GET /healthz``: 200 while the worker can work, 503 while it cannot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from flowmonkey import Engine, errors
from flowmonkey.stores.sqlite import SqliteStore
from flowmonkey.worker import Worker, WorkerOptions, check_health
from worker.support import eventually

FAST = {"poll_interval": 0.05, "scheduler_interval": 0.05, "health_port": 0}


async def get(port: int, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


class FlakyStore(SqliteStore):
    """A SQLite store whose claims fail while ``down`` is set."""

    down = False

    async def claim(self, **kwargs: Any) -> Any:
        if self.down:
            raise errors.StoreUnavailable("database at sqlite:///x is unavailable: test")
        return await super().claim(**kwargs)


async def test_ok_while_running_and_503_while_the_store_fails(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "h.db")
    async with Engine(store) as engine:
        worker = Worker(engine, WorkerOptions(worker_id="w-1", max_backoff=0.1, **FAST))
        task = asyncio.create_task(worker.run(handle_signals=False))
        await eventually(lambda: _polled(worker), timeout=10, what="the first poll")
        port = worker.health_port
        assert port is not None
        status, body = await get(port)
        assert status == 200
        assert body["status"] == "ok" and body["worker_id"] == "w-1"
        assert body["in_flight"] == 0 and body["last_claim_at"] is None
        assert body["sync_handlers"]["queued_steps"] == 0  # steps waiting for a thread
        assert await check_health(port)
        assert (await get(port, "/nope"))[0] == 404

        store.down = True
        await eventually(lambda: _status(port, 503), timeout=10, what="a 503")
        _, body = await get(port)
        assert body["status"] == "unavailable" and "unavailable" in body["error"]
        assert not await check_health(port)

        store.down = False
        await eventually(lambda: _status(port, 200), timeout=10, what="a 200 again")
        worker.stop()
        await asyncio.wait_for(task, timeout=10)
        assert not await check_health(port)  # the server is gone with the worker


async def test_503_while_the_database_is_unreachable() -> None:
    engine = Engine(_unreachable_store())
    worker = Worker(engine, WorkerOptions(max_backoff=0.2, **FAST))
    task = asyncio.create_task(worker.run(handle_signals=False))
    try:
        await eventually(lambda: _has_port(worker), timeout=10, what="the health server")
        port = worker.health_port
        assert port is not None
        await eventually(lambda: _status(port, 503, "error"), timeout=10, what="an error")
        status, body = await get(port)
        assert status == 503 and body["status"] == "unavailable"
        assert "secret" not in body["error"] and "***" in body["error"]
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=10)
    assert worker.state == "stopped"


def _unreachable_store() -> Any:
    from flowmonkey.stores import open_store

    # Port 1 refuses at once; the password must never be shown.
    return open_store("postgresql://u:secret@127.0.0.1:1/db", connect_timeout=1)


async def _polled(worker: Worker) -> bool:
    return worker.last_poll_at is not None


async def _has_port(worker: Worker) -> bool:
    return worker.health_port is not None


async def _status(port: int, expected: int, key: str | None = None) -> bool:
    status, body = await get(port)
    return status == expected and (key is None or key in body)

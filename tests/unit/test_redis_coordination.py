"""RedisLockManager and RedisWakeSignaler against a real Redis server (never mocked)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from flowmonkey.coordination.base import Lock, LockManager, WakeSignaler
from flowmonkey.coordination.redis import RedisLock, RedisLockManager, RedisWakeSignaler

pytestmark = pytest.mark.redis

LOGGER = "flowmonkey.coordination.redis"


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def notify_until_received(
    sender: RedisWakeSignaler, receiver: RedisWakeSignaler, execution_id: str, timeout: float = 10
) -> None:
    """Pub/sub drops signals while a subscriber reconnects, so resend until one lands."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await sender.notify(execution_id)
        if execution_id in await receiver.wait(0.1):
            return
    pytest.fail(f"{execution_id} never arrived")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client for inspecting the server."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def locks(redis_url: str, admin: aioredis.Redis) -> AsyncIterator[RedisLockManager]:
    """A lock manager with a prefix of its own; its keys are deleted afterwards."""
    prefix = f"fmtest:{uuid.uuid4().hex}:lock:"
    manager = RedisLockManager(redis_url, prefix=prefix)
    yield manager
    await manager.close()
    keys = [key async for key in admin.scan_iter(match=prefix + "*")]
    if keys:
        await admin.delete(*keys)


@pytest.fixture
def channel() -> str:
    return f"fmtest:wake:{uuid.uuid4().hex}"


@pytest.fixture
async def make_signaler(
    redis_url: str, channel: str
) -> AsyncIterator[Callable[..., Awaitable[RedisWakeSignaler]]]:
    """Started signalers on one test channel, each with its own client (like processes)."""
    made: list[RedisWakeSignaler] = []

    async def make(client: Any = None, **options: Any) -> RedisWakeSignaler:
        signaler = RedisWakeSignaler(client or redis_url, channel=channel, **options)
        made.append(signaler)
        await signaler.start()
        return signaler

    yield make
    for signaler in made:
        await signaler.close()


# -- locks ------------------------------------------------------------------------------


async def test_implements_protocols(locks: RedisLockManager, redis_url: str) -> None:
    assert isinstance(locks, LockManager)
    lock = await locks.acquire("p", timedelta(seconds=5))
    assert isinstance(lock, Lock)
    await lock.release()
    assert isinstance(RedisWakeSignaler(redis_url), WakeSignaler)


async def test_acquire_is_exclusive(locks: RedisLockManager, admin: aioredis.Redis) -> None:
    first = await locks.acquire("job", timedelta(seconds=5))
    assert isinstance(first, RedisLock)
    assert first.key == "job"
    assert len(first.token) == 32
    assert await admin.get(locks.prefix + "job") == first.token
    assert await locks.is_locked("job")
    assert await locks.acquire("job", timedelta(seconds=5)) is None
    assert await locks.acquire("other", timedelta(seconds=5)) is not None


async def test_release_frees_the_lock(locks: RedisLockManager) -> None:
    lock = await locks.acquire("job", timedelta(seconds=5))
    assert lock is not None
    assert await lock.release() is True
    assert not await locks.is_locked("job")
    assert await lock.release() is False
    again = await locks.acquire("job", timedelta(seconds=5))
    assert again is not None and again.token != lock.token


async def test_acquire_with_wait_succeeds_after_release(locks: RedisLockManager) -> None:
    held = await locks.acquire("job", timedelta(seconds=5))
    assert held is not None
    waiter = asyncio.create_task(
        locks.acquire("job", timedelta(seconds=5), wait=timedelta(seconds=5))
    )
    await asyncio.sleep(0.05)
    assert not waiter.done()
    assert await held.release()
    got = await asyncio.wait_for(waiter, 5)
    assert got is not None and got.token != held.token


async def test_acquire_wait_gives_up(locks: RedisLockManager) -> None:
    assert await locks.acquire("job", timedelta(seconds=5)) is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (
        await locks.acquire("job", timedelta(seconds=1), wait=timedelta(milliseconds=150)) is None
    )
    assert loop.time() - started >= 0.14


async def test_lock_expires_after_ttl(locks: RedisLockManager) -> None:
    lock = await locks.acquire("job", timedelta(milliseconds=150))
    assert lock is not None
    assert await locks.is_locked("job")

    async def free() -> bool:
        return not await locks.is_locked("job")

    await eventually(free, what="the lock to expire")
    assert await locks.acquire("job", timedelta(seconds=5)) is not None


async def _expire_and_take_over(locks: RedisLockManager) -> tuple[RedisLock, RedisLock]:
    stale = await locks.acquire("job", timedelta(milliseconds=100))
    assert stale is not None
    holder: RedisLock | None = None

    async def taken_over() -> bool:
        nonlocal holder
        holder = await locks.acquire("job", timedelta(seconds=30))
        return holder is not None

    await eventually(taken_over, what="another holder to take the expired lock")
    assert holder is not None
    return stale, holder


async def test_stale_release_keeps_the_new_holders_lock(
    locks: RedisLockManager, admin: aioredis.Redis
) -> None:
    stale, holder = await _expire_and_take_over(locks)
    assert await stale.release() is False
    assert await locks.is_locked("job")
    assert await admin.get(locks.prefix + "job") == holder.token
    assert await holder.release() is True


async def test_stale_extend_fails(locks: RedisLockManager, admin: aioredis.Redis) -> None:
    stale, holder = await _expire_and_take_over(locks)
    assert await stale.extend(timedelta(hours=1)) is False
    assert 0 < await admin.pttl(locks.prefix + "job") <= 30_000
    assert await admin.get(locks.prefix + "job") == holder.token


async def test_extend_by_holder(locks: RedisLockManager, admin: aioredis.Redis) -> None:
    lock = await locks.acquire("job", timedelta(milliseconds=200))
    assert lock is not None
    assert await lock.extend(timedelta(seconds=30)) is True
    assert await admin.pttl(locks.prefix + "job") > 10_000
    assert await lock.release() is True
    assert await lock.extend(timedelta(seconds=30)) is False
    assert not await locks.is_locked("job")


async def test_non_positive_ttl_is_rejected(locks: RedisLockManager) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await locks.acquire("job", timedelta(0))


async def test_lock_context_manager(locks: RedisLockManager) -> None:
    async with locks.lock("job", timedelta(seconds=5)) as lock:
        assert await locks.is_locked("job")
        with pytest.raises(TimeoutError, match="job"):
            async with locks.lock("job", timedelta(seconds=5), wait=timedelta(milliseconds=50)):
                pass
        assert lock.key == "job"
    assert not await locks.is_locked("job")

    with pytest.raises(RuntimeError, match="boom"):
        async with locks.lock("job", timedelta(seconds=5)):
            raise RuntimeError("boom")
    assert not await locks.is_locked("job")


async def test_lock_context_manager_warns_when_lock_was_lost(
    locks: RedisLockManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with locks.lock("job", timedelta(milliseconds=100)):

        async def free() -> bool:
            return not await locks.is_locked("job")

        await eventually(free, what="the lock to expire")
    assert any("expired before it was released" in r.getMessage() for r in caplog.records)


async def test_shared_client_is_not_closed(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    manager = RedisLockManager(client, prefix=f"fmtest:{uuid.uuid4().hex}:")
    lock = await manager.acquire("k", timedelta(seconds=5))
    assert lock is not None and await lock.release()
    await manager.close()
    assert await client.ping()
    await client.aclose()

    owned = RedisLockManager.from_url(redis_url)
    assert not await owned.is_locked(uuid.uuid4().hex)
    await owned.close()
    await owned.close()


# -- wake signals -----------------------------------------------------------------------


async def test_notify_reaches_another_process(
    make_signaler: Callable[..., Awaitable[RedisWakeSignaler]],
) -> None:
    sender = await make_signaler()
    receiver = await make_signaler()
    await sender.notify("exec-1")
    assert await receiver.wait(5) == ["exec-1"]
    # Every listener gets every signal, including the sender's own subscription.
    assert await sender.wait(5) == ["exec-1"]


async def test_wait_times_out_with_empty_list(
    make_signaler: Callable[..., Awaitable[RedisWakeSignaler]],
) -> None:
    signaler = await make_signaler()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await signaler.wait(0.15) == []
    assert loop.time() - started >= 0.14
    assert await signaler.wait(0) == []


async def test_many_notifies_are_drained_at_once(
    make_signaler: Callable[..., Awaitable[RedisWakeSignaler]],
) -> None:
    sender = await make_signaler()
    receiver = await make_signaler()
    ids = [f"exec-{i}" for i in range(200)]
    for execution_id in ids:
        await sender.notify(execution_id)

    async def all_buffered() -> bool:
        return receiver.pending == len(ids)

    await eventually(all_buffered, what="all signals to arrive")
    assert await receiver.wait(1) == ids
    assert receiver.pending == 0
    assert await receiver.wait(0.05) == []


async def test_repeated_signals_collapse(
    make_signaler: Callable[..., Awaitable[RedisWakeSignaler]],
) -> None:
    sender = await make_signaler()
    receiver = await make_signaler()
    for execution_id in ["a", "b", "a", "a", "c"]:
        await sender.notify(execution_id)

    async def buffered() -> bool:
        return receiver.pending == 3 and "c" in receiver._pending

    await eventually(buffered, what="the signals to arrive")
    assert await receiver.wait(1) == ["a", "b", "c"]


async def test_wait_wakes_a_blocked_waiter(
    make_signaler: Callable[..., Awaitable[RedisWakeSignaler]],
) -> None:
    sender = await make_signaler()
    receiver = await make_signaler()
    waiting = asyncio.create_task(receiver.wait(10))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await sender.notify("late")
    assert await asyncio.wait_for(waiting, 5) == ["late"]


async def test_wait_requires_start(redis_url: str) -> None:
    signaler = RedisWakeSignaler(redis_url, channel=f"fmtest:{uuid.uuid4().hex}")
    with pytest.raises(RuntimeError, match="start"):
        await signaler.wait(0.01)
    await signaler.close()


async def test_close_is_clean(redis_url: str, channel: str, admin: aioredis.Redis) -> None:
    name = f"fmtest-{uuid.uuid4().hex}"
    client = aioredis.Redis.from_url(redis_url, client_name=name)
    signaler = RedisWakeSignaler(client, channel=channel)
    await signaler.start()
    await signaler.start()
    assert signaler.listening
    assert (await admin.pubsub_numsub(channel))[0][1] == 1
    blocked = asyncio.create_task(signaler.wait(30))
    await asyncio.sleep(0.02)

    await signaler.close()
    await signaler.close()
    assert not signaler.listening
    assert await asyncio.wait_for(blocked, 5) == []
    with pytest.raises(RuntimeError, match="closed"):
        await signaler.wait(0.01)
    with pytest.raises(RuntimeError, match="closed"):
        await signaler.start()

    async def unsubscribed() -> bool:
        return (await admin.pubsub_numsub(channel))[0][1] == 0

    await eventually(unsubscribed, what="the subscription to go away")
    # The client was passed in, so it stays usable and is closed by its owner.
    assert await client.ping()
    await client.aclose()


async def test_concurrent_starts_subscribe_once(
    redis_url: str, channel: str, admin: aioredis.Redis
) -> None:
    signaler = RedisWakeSignaler(redis_url, channel=channel)
    await asyncio.gather(signaler.start(), signaler.start(), signaler.start())
    assert (await admin.pubsub_numsub(channel))[0][1] == 1
    await signaler.close()


async def test_resubscribes_after_the_connection_is_killed(
    make_signaler: Callable[..., Awaitable[RedisWakeSignaler]],
    redis_url: str,
    admin: aioredis.Redis,
) -> None:
    name = f"fmtest-{uuid.uuid4().hex}"
    client = aioredis.Redis.from_url(redis_url, client_name=name)
    receiver = await make_signaler(client, max_backoff=0.2)
    sender = await make_signaler()
    await notify_until_received(sender, receiver, "before")
    ours = [c for c in await admin.client_list(_type="pubsub") if c["name"] == name]
    assert len(ours) == 1
    await admin.client_kill_filter(_id=ours[0]["id"])
    await notify_until_received(sender, receiver, "after")
    assert receiver.listening
    await receiver.close()
    await client.aclose()


async def test_idle_subscription_stays_alive_with_pings(
    make_signaler: Callable[..., Awaitable[RedisWakeSignaler]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    receiver = await make_signaler(ping_interval=0.05)
    sender = await make_signaler()
    # Idle for several ping intervals: PING replies must keep the connection alive.
    assert await receiver.wait(0.4) == []
    await sender.notify("still-here")
    assert await receiver.wait(5) == ["still-here"]
    assert not [r for r in caplog.records if r.name == LOGGER]


async def test_unreachable_redis(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    url = f"redis://127.0.0.1:{free_port()}/0"
    signaler = RedisWakeSignaler(url)
    # A signal is a hint: publishing failures are logged, not raised.
    await signaler.notify("lost")
    await signaler.notify("lost-again")
    assert len([r for r in caplog.records if "cannot publish" in r.getMessage()]) == 1
    # Starting the listener, however, reports a bad configuration at once.
    with pytest.raises(Exception, match=r"(?i)connect"):
        await signaler.start()
    assert not signaler.listening
    await signaler.close()


class PrivateRedis:
    """A throwaway redis-server we are allowed to stop and restart."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self._directory),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        async def up() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await eventually(up, what="the private redis-server to start")

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        self._process = None


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not found; restart test needs its own server")
    server = PrivateRedis(tmp_path)
    await server.start()
    yield server
    await server.stop()


async def test_resubscribes_with_backoff_after_a_server_restart(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    quick = Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1)
    receiver_client = aioredis.Redis.from_url(private_redis.url, retry=quick)
    receiver = RedisWakeSignaler(receiver_client, max_backoff=0.2)
    sender = RedisWakeSignaler(private_redis.url)
    try:
        await receiver.start()
        await notify_until_received(sender, receiver, "before")

        await private_redis.stop()

        async def warned() -> bool:
            return any(
                r.levelno == logging.WARNING and "cannot resubscribe" in r.getMessage()
                for r in caplog.records
            )

        await eventually(warned, what="a warning about the lost subscription")
        assert receiver.listening

        await private_redis.start()
        await notify_until_received(sender, receiver, "after")
        assert any("resubscribed" in r.getMessage() for r in caplog.records)
    finally:
        await receiver.close()
        await sender.close()
        await receiver_client.aclose()

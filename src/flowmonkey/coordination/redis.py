"""Redis coordination: fenced expiring locks and pub/sub wake signals between processes.

Needs the ``redis`` extra (redis-py with asyncio). Importing ``flowmonkey`` never imports
this module; import ``flowmonkey.coordination.redis`` explicitly.

Unlike the reference implementation, lock release and extension are single Lua scripts
(compare the token, then ``DEL`` / ``PEXPIRE``), so a holder whose lock expired can never
delete or prolong a lock that someone else re-acquired in between; and the wake signaler
holds a real subscription that survives dropped connections.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

__all__ = ["RedisLock", "RedisLockManager", "RedisWakeSignaler"]

_log = logging.getLogger("flowmonkey.coordination.redis")

# Both scripts compare the stored token with ours and act in the same server-side step:
# a GET followed by a separate DEL/PEXPIRE (the reference's bug) lets the key expire and
# be re-acquired by another holder between the two commands.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
_EXTEND_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Polling a busy lock: start fast (locks are often held briefly), back off to spare Redis.
_ACQUIRE_FIRST_DELAY = 0.01
_ACQUIRE_MAX_DELAY = 0.25


def _to_ms(ttl: timedelta, *, field: str = "ttl") -> int:
    """Convert a positive duration to whole milliseconds (at least 1)."""
    ms = ttl / timedelta(milliseconds=1)
    if ms <= 0:
        raise ValueError(f"{field} must be positive, got {ttl!r}")
    # Round up so a sub-millisecond TTL still holds the lock for a moment.
    return max(1, int(-(-ms // 1)))


def _as_text(value: bytes | str) -> str:
    """Decode a reply whether or not the client was created with ``decode_responses``."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


class RedisLock:
    """A lock held in Redis, fenced by a random token.

    Attributes:
        key: the key passed to :meth:`RedisLockManager.acquire` (without the prefix).
        token: the random value stored in Redis; only its holder can release or extend.
    """

    __slots__ = ("_extend", "_redis_key", "_release", "key", "token")

    def __init__(
        self,
        key: str,
        token: str,
        *,
        redis_key: str,
        release_script: AsyncScript,
        extend_script: AsyncScript,
    ) -> None:
        self.key = key
        self.token = token
        self._redis_key = redis_key
        self._release = release_script
        self._extend = extend_script

    @property
    def redis_key(self) -> str:
        """The full Redis key (prefix + key)."""
        return self._redis_key

    async def release(self) -> bool:
        """Delete the lock if this token still holds it.

        Returns:
            ``False`` if the lock had already expired or passed to another holder
            (their lock is left untouched).
        """
        deleted = await self._release(keys=[self._redis_key], args=[self.token])
        return bool(deleted)

    async def extend(self, ttl: timedelta) -> bool:
        """Set the expiry to now + ``ttl`` if this token still holds the lock.

        Returns:
            ``False`` if the lock was lost; it is then not re-created.
        """
        updated = await self._extend(keys=[self._redis_key], args=[self.token, _to_ms(ttl)])
        return bool(updated)

    def __repr__(self) -> str:
        return f"RedisLock(key={self.key!r})"


class RedisLockManager:
    """Expiring, token-fenced locks in Redis (implements ``LockManager``).

    A lock is ``SET <prefix><key> <token> NX PX <ttl>``. Redis expires it by its own clock,
    so a crashed holder frees it after ``ttl``; a live holder doing long work must
    :meth:`RedisLock.extend` it before then.

    Args:
        client_or_url: a ``redis.asyncio.Redis`` (shared; not closed by :meth:`close`) or
            a URL such as ``redis://localhost:6379/0`` (a client owned by this manager).
        prefix: prepended to every key, to keep locks apart from other data.
    """

    def __init__(
        self, client_or_url: aioredis.Redis | str, *, prefix: str = "flowmonkey:lock:"
    ) -> None:
        if isinstance(client_or_url, str):
            self._client: aioredis.Redis = aioredis.Redis.from_url(client_or_url)
            self._owns_client = True
        else:
            self._client = client_or_url
            self._owns_client = False
        self._prefix = prefix
        self._release_script = self._client.register_script(_RELEASE_LUA)
        self._extend_script = self._client.register_script(_EXTEND_LUA)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "flowmonkey:lock:") -> RedisLockManager:
        """Create a manager with its own client for ``url`` (closed by :meth:`close`)."""
        return cls(url, prefix=prefix)

    @property
    def prefix(self) -> str:
        """The prefix prepended to every lock key."""
        return self._prefix

    async def acquire(
        self, key: str, ttl: timedelta, *, wait: timedelta | None = None
    ) -> RedisLock | None:
        """Take the lock on ``key`` for ``ttl``.

        Args:
            key: what to lock (the prefix is added).
            ttl: how long the lock lives unless released or extended.
            wait: how long to keep retrying while the lock is busy; ``None`` or zero
                tries once.

        Returns:
            The held lock, or ``None`` if it was still busy when ``wait`` ran out.
        """
        ttl_ms = _to_ms(ttl)
        redis_key = self._prefix + key
        token = secrets.token_hex(16)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (max(wait.total_seconds(), 0.0) if wait else 0.0)
        delay = _ACQUIRE_FIRST_DELAY
        while True:
            if await self._client.set(redis_key, token, nx=True, px=ttl_ms):
                return RedisLock(
                    key,
                    token,
                    redis_key=redis_key,
                    release_script=self._release_script,
                    extend_script=self._extend_script,
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            # Jitter keeps several waiters from retrying in lockstep; the last sleep is
            # clipped so one final attempt happens right at the deadline.
            await asyncio.sleep(min(remaining, random.uniform(delay / 2, delay)))
            delay = min(delay * 2, _ACQUIRE_MAX_DELAY)

    @asynccontextmanager
    async def lock(
        self, key: str, ttl: timedelta, *, wait: timedelta | None = None
    ) -> AsyncIterator[RedisLock]:
        """Hold the lock on ``key`` for the body of an ``async with`` block.

        Raises:
            TimeoutError: the lock was still busy when ``wait`` ran out.
        """
        held = await self.acquire(key, ttl, wait=wait)
        if held is None:
            waited = wait.total_seconds() if wait else 0.0
            raise TimeoutError(f"lock {key!r} is busy (waited {waited:g}s)")
        try:
            yield held
        finally:
            if not await held.release():
                # The body outlived the TTL: another holder may have run concurrently.
                _log.warning("lock %r expired before it was released", key)

    async def is_locked(self, key: str) -> bool:
        """Whether anyone currently holds the lock on ``key``."""
        return bool(await self._client.exists(self._prefix + key))

    async def close(self) -> None:
        """Close the client if this manager created it. Idempotent."""
        if self._owns_client:
            await self._client.aclose()


class RedisWakeSignaler:
    """Wake signals over Redis pub/sub (implements ``WakeSignaler``).

    :meth:`notify` publishes the execution id on ``channel``; every process that called
    :meth:`start` receives it and gets it from :meth:`wait`. Pub/sub delivers at most
    once and only to current subscribers, so a signal sent while a subscriber is
    reconnecting is lost; that is acceptable because signals are hints and workers poll
    the store as well.

    Args:
        client_or_url: a ``redis.asyncio.Redis`` (shared; not closed by :meth:`close`) or
            a URL (a client owned by this signaler).
        channel: the pub/sub channel; processes must agree on it.
        ping_interval: seconds of silence after which the subscription is PINGed; no
            reply within another interval means the connection is dead and is replaced.
        max_backoff: upper bound, in seconds, of the delay between resubscribe attempts.
        max_pending: distinct ids buffered between two :meth:`wait` calls; more are
            dropped (polling finds them).
    """

    def __init__(
        self,
        client_or_url: aioredis.Redis | str,
        *,
        channel: str = "flowmonkey:wake",
        ping_interval: float = 30.0,
        max_backoff: float = 5.0,
        max_pending: int = 10_000,
    ) -> None:
        if isinstance(client_or_url, str):
            self._client: aioredis.Redis = aioredis.Redis.from_url(client_or_url)
            self._owns_client = True
        else:
            self._client = client_or_url
            self._owns_client = False
        self._channel = channel
        self._ping_interval = ping_interval
        self._max_backoff = max_backoff
        self._max_pending = max_pending
        # A dict keeps arrival order and collapses repeated signals for the same id.
        self._pending: dict[str, None] = {}
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False
        self._publish_failing = False

    @classmethod
    def from_url(cls, url: str, *, channel: str = "flowmonkey:wake") -> RedisWakeSignaler:
        """Create a signaler with its own client for ``url`` (closed by :meth:`close`)."""
        return cls(url, channel=channel)

    @property
    def channel(self) -> str:
        """The pub/sub channel used for signals."""
        return self._channel

    @property
    def pending(self) -> int:
        """Number of distinct ids received and not yet returned by :meth:`wait`."""
        return len(self._pending)

    @property
    def listening(self) -> bool:
        """Whether the background subscription task is running."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Subscribe, then listen in a background task. Idempotent.

        Returns once Redis confirmed the subscription, so a signal published afterwards
        by any process is received.

        Raises:
            redis.exceptions.RedisError: the first subscription failed (later losses of
                the connection are retried in the background instead).
            RuntimeError: the signaler was closed.
        """
        self._ensure_open()
        # The lock keeps two concurrent start() calls from opening two subscriptions.
        async with self._start_lock:
            if self._task is not None:
                return
            pubsub = await self._subscribe()
            try:
                self._ensure_open()  # close() may have run while we were subscribing
            except RuntimeError:
                await self._discard(pubsub)
                raise
            self._task = asyncio.create_task(
                self._run(pubsub), name=f"flowmonkey-wake:{self._channel}"
            )

    async def close(self) -> None:
        """Stop listening, drop the subscription and close an owned client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # Re-raise only if *we* are being cancelled, not the task we just stopped.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        if self._owns_client:
            await self._client.aclose()
        # Release anyone blocked in wait(); they see the closed state.
        self._arrived.set()

    async def notify(self, execution_id: str) -> None:
        """Publish ``execution_id`` to every listening process.

        Does not need :meth:`start`. A failure to publish is logged, not raised: the
        signal is only a hint and the store is the source of truth.
        """
        try:
            await self._client.publish(self._channel, execution_id)
        except (RedisError, OSError) as exc:
            # Warn once per outage rather than once per signal.
            level = logging.DEBUG if self._publish_failing else logging.WARNING
            _log.log(level, "cannot publish wake signal on %r: %s", self._channel, exc)
            self._publish_failing = True
            return
        if self._publish_failing:
            _log.info("publishing wake signals on %r works again", self._channel)
            self._publish_failing = False

    async def wait(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds for signals.

        Returns:
            The distinct ids received since the previous call, in arrival order, or
            ``[]`` on timeout.

        Raises:
            RuntimeError: :meth:`start` was not called, or the signaler was closed.
        """
        self._ensure_open()
        if self._task is None:
            raise RuntimeError("call RedisWakeSignaler.start() before wait()")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        # Loop because another waiter may drain the buffer between the event firing and
        # this coroutine resuming.
        while not self._pending:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closed:
                return []
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                pass
        ids = list(self._pending)
        self._pending.clear()
        return ids

    # -- background subscription -------------------------------------------------------

    async def _subscribe(self) -> PubSub:
        """Open a pub/sub connection and wait for Redis to confirm the subscription."""
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            async with asyncio.timeout(max(self._ping_interval, 1.0)):
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "subscribe":
                        return pubsub
        except BaseException:
            await self._discard(pubsub)
            raise

    async def _run(self, pubsub: PubSub | None) -> None:
        """Listen forever; on connection loss resubscribe with capped exponential backoff."""
        backoff = 0.1
        while True:
            if pubsub is None:
                try:
                    pubsub = await self._subscribe()
                except (RedisError, OSError, TimeoutError) as exc:
                    delay = random.uniform(backoff / 2, backoff)
                    _log.warning(
                        "cannot resubscribe to %r (retrying in %.2fs): %s",
                        self._channel,
                        delay,
                        exc,
                    )
                    await asyncio.sleep(delay)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                _log.info("resubscribed to %r", self._channel)
                backoff = 0.1
            try:
                await self._listen(pubsub)
            except (RedisError, OSError) as exc:
                _log.warning("wake subscription to %r lost: %s", self._channel, exc)
            finally:
                await self._discard(pubsub)
                pubsub = None

    async def _listen(self, pubsub: PubSub) -> None:
        """Move published ids into the buffer until the connection fails."""
        loop = asyncio.get_running_loop()
        ping_sent_at: float | None = None
        while True:
            message = await pubsub.get_message(timeout=self._ping_interval)
            if message is not None:
                ping_sent_at = None
                if message["type"] == "message":
                    self._push(_as_text(message["data"]))
                continue
            # Silence: a half-open TCP connection never errors, so prove liveness.
            if ping_sent_at is None:
                await pubsub.ping()
                ping_sent_at = loop.time()
            elif loop.time() - ping_sent_at >= self._ping_interval:
                raise ConnectionError("no reply to PING on the wake subscription")

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError("RedisWakeSignaler is closed")

    def _push(self, execution_id: str) -> None:
        if execution_id not in self._pending and len(self._pending) >= self._max_pending:
            _log.debug("wake buffer full; dropping signal for %s", execution_id)
            return
        self._pending[execution_id] = None
        self._arrived.set()

    @staticmethod
    async def _discard(pubsub: PubSub) -> None:
        """Close a pub/sub connection, ignoring errors from an already-broken socket."""
        try:
            await pubsub.aclose()
        except (RedisError, OSError) as exc:
            _log.debug("error closing wake subscription: %s", exc)

"""Group commit: step commits of several executions that are ready at the same moment go
to the store in one transaction (one fsync) when the store supports ``commit_many``;
likewise creates with ``create_many`` (``CreateBatcher``, used while the API is busy).

Each commit keeps its own fence and its own outcome: ``commit_many`` reports a
``LeaseLost`` (or any error) per item and still lands the others. Nothing waits for a
batch to fill: commits made while the event loop runs one round of callbacks share a
transaction, and a lone commit goes to the store at once, so a single stream pays only
one loop round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.model.events import Event
    from flowmonkey.model.execution import Execution
    from flowmonkey.stores.base import Lease, StepCommit, Store

__all__ = ["CommitBatcher", "CreateBatcher"]


class CommitBatcher:
    """Collects the commits of one loop round and hands them to ``store.commit_many``."""

    def __init__(self, store: Store, busy: Callable[[], bool] = lambda: True) -> None:
        self._store = store
        self._busy = busy
        """True when other executions are being driven (else a commit goes straight
        to the store, saving the loop round a group waits for)."""
        self._commit_many = getattr(store, "commit_many", None)
        self._pending: list[tuple[Lease, StepCommit, asyncio.Future[None]]] = []
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        """True when the store can commit several executions in one transaction."""
        return self._commit_many is not None

    async def commit(self, lease: Lease, commit: StepCommit) -> None:
        """Commit through the next group (the store reads ``commit`` when it is sent)."""
        if self._commit_many is None or (not self._pending and not self._busy()):
            await self._store.commit(lease, commit)
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((lease, commit, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[Lease, StepCommit, asyncio.Future[None]]]) -> None:
        try:
            if len(batch) == 1:
                lease, commit, _ = batch[0]
                outcomes: list[Any] = [None]
                try:
                    await self._store.commit(lease, commit)
                except Exception as exc:
                    outcomes = [exc]
            else:
                assert self._commit_many is not None
                outcomes = list(await self._commit_many([(lease, c) for lease, c, _ in batch]))
        except BaseException as exc:  # the whole group failed (store down, cancelled)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)


class CreateBatcher:
    """Creates that meet in one loop round go to ``store.create_many`` together.

    Off unless ``allowed`` (the HTTP API turns it on) and the store has ``create_many``.
    A create that waits one loop round for company costs that round, so the batcher only
    waits while it is *grouping*: it starts grouping when a probe (every
    ``PROBE_EVERY``-th create while not grouping) finds company, and stops after
    ``ALONE_LIMIT`` groups in a row of one. With an inline SQLite store a request runs to
    its commit without yielding, so requests that arrive together only meet this way.
    Each caller's create is durable when its ``create`` returns, as alone.
    """

    PROBE_EVERY = 8
    ALONE_LIMIT = 4

    def __init__(self, store: Store) -> None:
        self._store = store
        self._create_many = getattr(store, "create_many", None)
        self.allowed = False
        self._grouping = False
        self._alone = 0
        self._count = 0
        self._pending: list[tuple[Any, asyncio.Future[tuple[Execution, bool]]]] = []
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    def _wait_for_company(self) -> bool:
        if self._pending:
            return True
        if not self.allowed or self._create_many is None:
            return False
        if self._grouping:
            return True
        self._count += 1
        return self._count % self.PROBE_EVERY == 0

    async def create(
        self, execution: Execution, events: Sequence[Event], lease: Lease | None
    ) -> tuple[Execution, bool]:
        """``store.create(execution, events, lease=lease)``, maybe with others."""
        if not self._wait_for_company():
            return await self._store.create(execution, events, lease=lease)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Execution, bool]] = loop.create_future()
        self._pending.append(((execution, events, lease), future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if len(batch) > 1:
            self._grouping, self._alone = True, 0
        else:
            self._alone += 1
            self._grouping = self._grouping and self._alone < self.ALONE_LIMIT
        if batch:
            task = asyncio.ensure_future(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[Any, asyncio.Future[tuple[Execution, bool]]]]) -> None:
        try:
            if len(batch) == 1:
                (execution, events, lease), _ = batch[0]
                outcomes: list[Any] = [await self._store.create(execution, events, lease=lease)]
            else:
                assert self._create_many is not None
                outcomes = list(await self._create_many([item for item, _ in batch]))
        except BaseException as exc:  # the whole group failed (store down, cancelled)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

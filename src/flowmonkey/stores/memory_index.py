"""Indexes of ``MemoryStore``: what its periodic queries and listings read instead of
scanning every execution.

Each index is a ``SortedKeys`` of ``(time, id)`` or ``(created_at, id)`` tuples, kept in
step with every write (``Indexes.update`` after anything that may change a row's status,
times or lease). A query walks its index from the front and stops at the first key not
yet due, so with a million executions parked on a timer and nothing due, the scheduler's
pass and an empty claim read one key each, as the SQL stores' partial indexes do.
``Probe.visited`` counts the keys walked, so tests can tell an index walk from a scan.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flowmonkey.model.execution import ExecutionStatus, TokenStatus

__all__ = ["ATTRS", "Indexes", "Probe", "SortedKeys"]

_RUNNING = ExecutionStatus.RUNNING
_PENDING = ExecutionStatus.PENDING
_WAITING = ExecutionStatus.WAITING
_TOKEN_WAITING = TokenStatus.WAITING

ATTRS = ("flow_id", "tenant_id", "correlation_id", "parent_execution_id")
"""Header attributes with an index of their own (``ExecutionQuery`` filters)."""

Key = tuple[Any, ...]


class Probe:
    """How many index keys the store's queries walked (a test reads it to tell an index
    range from a scan of every execution)."""

    __slots__ = ("visited",)

    def __init__(self) -> None:
        self.visited = 0


class SortedKeys:
    """A sorted set of tuples in chunks of a few hundred (the layout of the
    ``sortedcontainers`` package, reduced to what the store needs): adding or removing a
    key costs a bisection and a short list shift, whatever the size."""

    __slots__ = ("_lists", "_maxes", "_probe", "_size")

    _LOAD = 500

    def __init__(self, probe: Probe) -> None:
        self._lists: list[list[Key]] = []
        self._maxes: list[Key] = []
        self._probe = probe
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, key: Key) -> None:
        """Insert ``key`` (which must not be present)."""
        maxes = self._maxes
        self._size += 1
        if not maxes:
            self._lists.append([key])
            maxes.append(key)
            return
        i = bisect_left(maxes, key)
        if i == len(maxes):
            i -= 1
            chunk = self._lists[i]
            chunk.append(key)  # the common case: a new execution is the newest
            maxes[i] = key
        else:
            chunk = self._lists[i]
            insort(chunk, key)
        if len(chunk) > 2 * self._LOAD:
            half = self._LOAD
            self._lists[i : i + 1] = [chunk[:half], chunk[half:]]
            maxes[i : i + 1] = [chunk[half - 1], chunk[-1]]

    def discard(self, key: Key) -> None:
        """Remove ``key`` if present."""
        maxes = self._maxes
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return
        chunk = self._lists[i]
        j = bisect_left(chunk, key)
        if j == len(chunk) or chunk[j] != key:
            return
        del chunk[j]
        self._size -= 1
        if not chunk:
            del self._lists[i]
            del maxes[i]
        elif j == len(chunk):
            maxes[i] = chunk[-1]

    def ascending(self, after: Key | None = None) -> Iterator[Key]:
        """Keys in order (those above ``after`` when given); each one counted."""
        probe = self._probe
        lists = self._lists
        i = 0 if after is None else bisect_right(self._maxes, after)
        for n in range(i, len(lists)):
            chunk = lists[n]
            j = 0 if after is None or n != i else bisect_right(chunk, after)
            for key in chunk[j:]:
                probe.visited += 1
                yield key

    def descending(self, before: Key | None = None) -> Iterator[Key]:
        """Keys in reverse order (those below ``before`` when given); each one counted."""
        probe = self._probe
        lists = self._lists
        i = len(lists) - 1 if before is None else bisect_left(self._maxes, before)
        for n in range(min(i, len(lists) - 1), -1, -1):
            chunk = lists[n]
            j = len(chunk) if before is None or n != i else bisect_left(chunk, before)
            for key in reversed(chunk[:j]):
                probe.visited += 1
                yield key


def _due_at(row: Any) -> Any:
    """The earliest time the scheduler has to look at the row (wake, deadline, wait
    deadline), whatever its lease; ``None`` when nothing is pending."""
    header = row.execution
    status = header.status
    if status.is_terminal:
        return None
    due = header.deadline_at
    if status is _WAITING:
        wake = header.wake_at
        if wake is not None and (due is None or wake < due):
            due = wake
        for token in header.tokens:
            at = token.wait_deadline_at
            if at is not None and token.status is _TOKEN_WAITING and (due is None or at < due):
                due = at
    return due


def _ready_at(row: Any) -> Any:
    """When ``claim`` may take the row (the year 1 for a free pending one); ``None``:
    never, until a write changes it."""
    header = row.execution
    status = header.status
    leased = row.lease_owner is not None
    if status is _PENDING:
        if not leased:
            # Before any ``now``; the 2nd of January so that no UTC offset underflows.
            return datetime(1, 1, 2, tzinfo=header.created_at.tzinfo)
        return row.lease_expires
    if status is _WAITING:
        wake = header.wake_at
        if wake is None or not leased:
            return wake
        expires = row.lease_expires
        return None if expires is None else max(wake, expires)
    if status is _RUNNING and leased:
        return row.lease_expires
    return None


class Indexes:
    """Every index of one ``MemoryStore``. A row's current keys are kept on the row
    (``row.keys``) so an update removes exactly what it added."""

    __slots__ = (
        "by_attr",
        "by_status",
        "due",
        "idle",
        "leased",
        "order",
        "probe",
        "ready",
        "tasks_of",
        "tokens_of",
    )

    def __init__(self) -> None:
        probe = self.probe = Probe()
        self.order = SortedKeys(probe)
        """Every execution by ``(created_at, id)``."""
        self.by_status: dict[ExecutionStatus, SortedKeys] = {
            s: SortedKeys(probe) for s in ExecutionStatus
        }
        self.by_attr: dict[str, dict[str, SortedKeys]] = {a: {} for a in ATTRS}
        self.due = SortedKeys(probe)
        """Non-terminal executions by the earliest of wake, deadline, wait deadline."""
        self.ready = SortedKeys(probe)
        """Executions ``claim`` may take, by the time they become claimable."""
        self.leased = SortedKeys(probe)
        """Running executions with a lease, by its expiry (``stale``)."""
        self.idle = SortedKeys(probe)
        """Running executions without a lease, by ``updated_at`` (``stale``)."""
        self.tokens_of: dict[str, set[str]] = {}
        self.tasks_of: dict[str, set[str]] = {}

    def add(self, row: Any) -> None:
        """Index a new row."""
        header = row.execution
        key = (header.created_at, header.id)
        self.order.add(key)
        for attr in ATTRS:
            value = getattr(header, attr)
            if value is not None:
                found = self.by_attr[attr].get(value)
                if found is None:
                    found = self.by_attr[attr][value] = SortedKeys(self.probe)
                found.add(key)
        row.keys = (None, None, None, None, None)
        self.update(row)

    def update(self, row: Any) -> None:
        """Bring the row's status and time keys up to date after a write."""
        header = row.execution
        ident = header.id
        status = header.status
        due = _due_at(row)
        ready = _ready_at(row)
        leased = idle = None
        if status is _RUNNING:
            if row.lease_owner is None:
                idle = header.updated_at
            elif row.lease_expires is not None:
                leased = row.lease_expires
        new = (status, due, ready, leased, idle)
        old = row.keys
        if new == old:
            return
        row.keys = new
        if old[0] is not status:
            if old[0] is not None:
                self.by_status[old[0]].discard((header.created_at, ident))
            self.by_status[status].add((header.created_at, ident))
        for index, before, after in (
            (self.due, old[1], due),
            (self.ready, old[2], ready),
            (self.leased, old[3], leased),
            (self.idle, old[4], idle),
        ):
            if before != after:
                if before is not None:
                    index.discard((before, ident))
                if after is not None:
                    index.add((after, ident))

    def remove(self, row: Any) -> None:
        """Forget a deleted row (its tokens and tasks are the caller's)."""
        header = row.execution
        ident = header.id
        key = (header.created_at, ident)
        self.order.discard(key)
        for attr in ATTRS:
            value = getattr(header, attr)
            if value is not None:
                found = self.by_attr[attr].get(value)
                if found is not None:
                    found.discard(key)
                    if not found:
                        del self.by_attr[attr][value]
        status, due, ready, leased, idle = row.keys
        self.by_status[status].discard(key)
        for index, at in ((self.due, due), (self.ready, ready), (self.leased, leased),
                          (self.idle, idle)):  # fmt: skip
            if at is not None:
                index.discard((at, ident))
        self.tokens_of.pop(ident, None)
        self.tasks_of.pop(ident, None)

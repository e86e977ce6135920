"""Retention: purging finished executions in small batches (``Engine.purge``).

Each batch is one short store transaction (``Store.purge``). Live work comes first: a
batch holds SQLite's write lock (and, with the inline SQLite store, the event loop), so a
step that arrives meanwhile waits for it. The pass therefore

- waits, before each batch, until this engine has no run in flight (at most ``pause``
  seconds, then goes ahead so that a busy engine still purges);
- while runs are live (or one ended less than ``_RECENT`` ago), sizes each batch by
  time, not count, from the measured cost of the batches so far (``_Cost``: a fixed cost
  per transaction, such as SQLite's fsync, plus a cost per execution): about
  ``_BUSY_WORK`` of per-execution work (at least ``_BUSY_FLOOR`` executions), so a step
  waits for one small batch at worst; and rests after each batch so that the purge takes
  at most ``_BUSY_SHARE`` of a busy engine's time;
- on an idle engine, runs batches of ``batch_size`` executions back to back: a backlog
  goes at full speed.

Which executions a store keeps (live ones, children of a kept parent, executions whose
idempotency key is still valid) is the store's contract.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.flow import KEEP_FOREVER
from flowmonkey.stores.base import PurgeQuery

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime

__all__ = ["PurgeReport", "PurgeStats", "purge", "purge_expired"]

log = logging.getLogger("flowmonkey.retention")

_BUSY_SHARE = 0.3
"""The share of a busy engine's time its purge may take."""
_BESIDE_SHARE = 0.25
"""The share of a busy engine's time its purge may take on a store that purges beside
live writes (``purge_beside_writers``): the batches wait on the server, not on a lock."""
_BESIDE_BATCH = 50
"""Most executions per batch on such a store while this engine runs executions: the
server works in short bursts (a few milliseconds), which the live runs' server work
waits behind less than behind long ones."""
_BUSY_WORK = 0.0005
"""Seconds of per-execution work in one batch while this engine runs executions."""
_BUSY_FLOOR = 4
"""Fewest executions a batch examines while runs are live (below that, the fixed cost of
each transaction buys almost nothing)."""
_RECENT = 0.05
"""A run that ended this recently (seconds) counts as live work: the next is likely."""
_PROBES = (1, 8)
"""Executions examined by the first batches of a pass, two sizes so that the fixed and
the per-execution cost can be told apart."""


class _Cost:
    """Seconds a purge batch takes as ``fixed + each * n``, fitted by least squares over
    the batches so far, older ones fading."""

    __slots__ = ("_sums",)

    def __init__(self) -> None:
        self._sums = [0.0] * 5  # weight, n, t, n*n, n*t

    def add(self, n: int, took: float) -> None:
        w, sn, st, snn, snt = (v * 0.9 for v in self._sums)
        self._sums = [w + 1, sn + n, st + took, snn + n * n, snt + n * took]

    def limit(self, target: float, *, most: int) -> int:
        """How many executions fit in ``target`` seconds of per-execution work (the
        fixed cost comes on top: every batch pays it, whatever its size)."""
        w, sn, st, snn, snt = self._sums
        spread = w * snn - sn * sn
        each = (w * snt - sn * st) / spread if spread > 1e-9 else 0.0
        if each <= 0:
            each = st / sn  # one size so far, or noise: the cost all per execution
        return max(1, min(most, int(target / each)))


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What one purge (one or more passes) did."""

    executions: int = 0
    """Executions purged (would be, for a dry run), children included."""
    rows: int = 0
    """Rows deleted over every table (0 for a dry run)."""
    batches: int = 0
    dry_run: bool = False

    def __add__(self, other: PurgeReport) -> PurgeReport:
        return PurgeReport(
            self.executions + other.executions,
            self.rows + other.rows,
            self.batches + other.batches,
            self.dry_run or other.dry_run,
        )


@dataclass(slots=True)
class PurgeStats:
    """Running totals of this engine's purges (``Engine.purge_stats``): the metric a
    worker reports on ``/healthz``. Dry runs are not counted."""

    executions: int = 0
    rows: int = 0
    batches: int = 0
    passes: int = 0


async def purge(
    engine: Runtime,
    stats: PurgeStats,
    *,
    older_than: timedelta,
    status: Iterable[ExecutionStatus | str] | None = None,
    flow_id: str | None = None,
    exclude_flow_ids: Iterable[str] = (),
    dry_run: bool = False,
    batch_size: int = 200,
    pause: float = 0.0,
    share: float | None = None,
) -> PurgeReport:
    """One pass: purge finished executions that ended more than ``older_than`` ago.
    ``share``: the part of a busy engine's time the pass may take (default
    ``_BUSY_SHARE``, or ``_BESIDE_SHARE`` on a store that purges beside live writes)."""
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    if share is not None and not 0 < share <= 1:
        raise ValueError("share must be > 0 and <= 1")
    now = engine.clock.now()
    statuses = None if status is None else [ExecutionStatus(s) for s in status]
    excluded = list(exclude_flow_ids)
    report = PurgeReport(dry_run=dry_run)
    cursor: str | None = None
    # A store whose purge runs beside live writes (PostgreSQL: its own connection and
    # row locks on the old executions only) needs no pacing: the batches leave the event
    # loop free while the server works.
    beside = bool(getattr(engine.store, "purge_beside_writers", False))
    if share is None:
        share = _BESIDE_SHARE if beside else _BUSY_SHARE
    cost = _Cost()
    done = 0
    ended = rest = 0.0
    while True:
        if beside:
            limit = await _beside_limit(engine, batch_size, ended + rest)
        else:
            limit = await _paced_limit(engine, cost, done, batch_size, pause, ended + rest)
        began = time.perf_counter()
        batch = await engine.store.purge(
            PurgeQuery(
                older_than=now - older_than, now=now, status=statuses, flow_id=flow_id,
                exclude_flow_ids=excluded, limit=limit, cursor=cursor, dry_run=dry_run,
            )
        )  # fmt: skip
        ended = time.perf_counter()
        cost.add(limit, ended - began)
        rest = (ended - began) * (1 - share) / share
        done += 1
        report += PurgeReport(batch.executions, batch.rows, 1, dry_run)
        if not dry_run:
            stats.executions += batch.executions
            stats.rows += batch.rows
            stats.batches += 1
        cursor = batch.next_cursor
        if cursor is None:
            break
        await asyncio.sleep(0)  # whatever else is ready runs before the next batch
    if not dry_run:
        stats.passes += 1
    return report


def _busy(engine: Runtime) -> bool:
    """Whether this engine runs executions now, or one ended less than ``_RECENT`` ago."""
    return bool(engine.inflight) or time.monotonic() - engine.last_run_end < _RECENT


async def _beside_limit(engine: Runtime, batch_size: int, after: float) -> int:
    """The next batch's size on a store whose purge runs beside live writes: while this
    engine runs executions, batches of at most ``_BESIDE_BATCH`` taking ``_BESIDE_SHARE``
    of the time (the server's CPU and disk are shared with the live runs); idle,
    ``batch_size`` back to back."""
    if not _busy(engine):
        return batch_size
    if (remaining := after - time.perf_counter()) > 0:
        await asyncio.sleep(remaining)
    return min(batch_size, _BESIDE_BATCH)


async def _paced_limit(
    engine: Runtime, cost: _Cost, done: int, batch_size: int, pause: float, after: float
) -> int:
    """Wait for this engine's live work as the module docstring says, then return how
    many executions the next batch examines. ``after``: when (``perf_counter``) the
    live runs' share of the time since the last batch is over."""
    if engine.inflight:
        await engine.until_quiet(pause)
    busy = _busy(engine)
    if busy and (remaining := after - time.perf_counter()) > 0:
        await asyncio.sleep(remaining)  # the live runs' share of the time
        if engine.inflight:
            await engine.until_quiet(pause)
    if done < len(_PROBES):
        return min(batch_size, _PROBES[done])
    if busy:
        return max(min(batch_size, _BUSY_FLOOR), cost.limit(_BUSY_WORK, most=batch_size))
    return batch_size


async def purge_expired(
    engine: Runtime,
    stats: PurgeStats,
    *,
    batch_size: int = 200,
    pause: float = 0.0,
    share: float | None = None,
) -> PurgeReport:
    """The retention pass a worker runs: ``EngineOptions.retention`` for every flow,
    except flows whose latest registered version sets its own ``retention``."""
    default = engine.options.retention
    overrides = {
        flow_id: flow.retention
        for flow_id in engine.flows.flow_ids()
        if (flow := engine.flows.get(flow_id)) is not None and flow.retention is not None
    }
    report = PurgeReport()
    for flow_id, retention in sorted(overrides.items()):
        if retention != KEEP_FOREVER:
            report += await purge(
                engine, stats, older_than=retention, flow_id=flow_id, batch_size=batch_size,
                pause=pause, share=share,
            )  # fmt: skip
    if default is not None:
        report += await purge(
            engine, stats, older_than=default, exclude_flow_ids=overrides,
            batch_size=batch_size, pause=pause, share=share,
        )  # fmt: skip
    if report.executions:
        log.info(
            "retention: purged %d finished execution(s), %d row(s), in %d batch(es)",
            report.executions, report.rows, report.batches,
            extra={"purged_executions": report.executions, "purged_rows": report.rows},
        )  # fmt: skip
    return report

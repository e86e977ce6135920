"""Retention: purging finished executions in small batches (``Engine.purge``).

Each batch is one short store transaction (``Store.purge``), and the pass yields to the
event loop between batches (and sleeps ``pause`` seconds), so workers sharing the store
keep stepping while a pass runs. Which executions a store keeps (live ones, children of a
kept parent, executions whose idempotency key is still valid) is the store's contract.
"""

from __future__ import annotations

import asyncio
import logging
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
) -> PurgeReport:
    """One pass: purge finished executions that ended more than ``older_than`` ago."""
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    now = engine.clock.now()
    statuses = None if status is None else [ExecutionStatus(s) for s in status]
    excluded = list(exclude_flow_ids)
    report = PurgeReport(dry_run=dry_run)
    cursor: str | None = None
    while True:
        batch = await engine.store.purge(
            PurgeQuery(
                older_than=now - older_than, now=now, status=statuses, flow_id=flow_id,
                exclude_flow_ids=excluded, limit=batch_size, cursor=cursor, dry_run=dry_run,
            )
        )  # fmt: skip
        report += PurgeReport(batch.executions, batch.rows, 1, dry_run)
        if not dry_run:
            stats.executions += batch.executions
            stats.rows += batch.rows
            stats.batches += 1
        cursor = batch.next_cursor
        if cursor is None:
            break
        await asyncio.sleep(pause)  # let workers at the store between batches
    if not dry_run:
        stats.passes += 1
    return report


async def purge_expired(
    engine: Runtime, stats: PurgeStats, *, batch_size: int = 200, pause: float = 0.0
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
                pause=pause,
            )  # fmt: skip
    if default is not None:
        report += await purge(
            engine, stats, older_than=default, exclude_flow_ids=overrides,
            batch_size=batch_size, pause=pause,
        )  # fmt: skip
    if report.executions:
        log.info(
            "retention: purged %d finished execution(s), %d row(s), in %d batch(es)",
            report.executions, report.rows, report.batches,
            extra={"purged_executions": report.executions, "purged_rows": report.rows},
        )  # fmt: skip
    return report

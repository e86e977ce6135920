"""Creating an execution: limits on the initial context, idempotency, optional self-lease."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowmonkey import errors
from flowmonkey.engine.limits import ContextSizes, OutputError, plan_write
from flowmonkey.engine.lookup import get_flow
from flowmonkey.engine.options import EngineOptions
from flowmonkey.engine.results import CreateResult
from flowmonkey.engine.run import Run
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus, Token
from flowmonkey.model.flow import Flow
from flowmonkey.stores.base import Lease

if TYPE_CHECKING:
    from flowmonkey.engine.runtime import Runtime

__all__ = ["check_context", "create_execution", "prepare_execution", "time_ordered_id"]


def time_ordered_id(at: datetime) -> str:
    """A new execution id: a version-7 UUID (RFC 9562), 48 bits of ``at`` in Unix
    milliseconds then 74 random bits. Ids made close in time sort close together, so the
    store's inserts land on the same few index pages instead of random ones (with random
    ids, a store holding millions of executions reads and WAL-logs a cold page per step)."""
    millis = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | (((rand >> 62) & 0xFFF) << 64) | (0b10 << 62)
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


async def prepare_execution(
    engine: Runtime,
    flow_id: str,
    context: Mapping[str, Any] | None,
    *,
    tenant_id: str | None = None,
    idempotency_key: str | None = None,
    idempotency_ttl: timedelta | None = None,
    metadata: Mapping[str, Any] | None = None,
    parent_execution_id: str | None = None,
    parent_step_id: str | None = None,
    correlation_id: str | None = None,
    user_id: str | None = None,
    version: str | None = None,
    execution_timeout: timedelta | None = None,
    wait_timeout: timedelta | None = None,
    execution_id: str | None = None,
    depth: int = 0,
) -> tuple[Execution, Event, Flow]:
    """Build (not store) a new ``pending`` execution and its ``execution.created`` event,
    checking the tenant, the flow and the context limits (what ``create_execution``
    stores; a schedule fire stores it in the same transaction as its run record)."""
    tenant: Any = tenant_id  # typed str | None, but callers pass anything at run time
    if tenant is not None and (not isinstance(tenant, str) or not tenant):
        # "" would share the no-tenant idempotency scope (stores key on tenant or "").
        raise errors.InvalidValue(
            f"tenant_id must be a non-empty string or None, got {tenant_id!r}"
        )
    flow = await get_flow(engine, flow_id, version)
    await engine.tables.check_flow(flow)  # once per flow version: its pipes' tables exist
    initial = dict(context or {})
    if not isinstance(context, Mapping | None):
        raise TypeError("context must be a mapping")
    check_context(initial, engine.options)
    now = engine.clock.now()
    ttl = idempotency_ttl if idempotency_ttl is not None else engine.options.idempotency_ttl
    ttl = min(ttl, engine.options.max_idempotency_ttl)
    ex_timeout = execution_timeout or engine.options.execution_timeout
    execution = Execution(
        id=execution_id or time_ordered_id(now),
        flow_id=flow.id,
        flow_version=flow.version,
        status=ExecutionStatus.PENDING,
        current_step_id=flow.initial_step_id,
        tokens=[Token(id="t0", step_id=flow.initial_step_id)],
        context=initial,
        created_at=now,
        updated_at=now,
        tenant_id=tenant_id,
        metadata=dict(metadata or {}),
        correlation_id=correlation_id,
        user_id=user_id,
        idempotency_key=idempotency_key,
        idempotency_expires_at=now + ttl if idempotency_key is not None else None,
        parent_execution_id=parent_execution_id,
        parent_step_id=parent_step_id,
        depth=depth,
        execution_timeout=execution_timeout,
        wait_timeout=wait_timeout,
        deadline_at=now + ex_timeout if ex_timeout is not None else None,
        event_seq=1,
    )
    created_event = Event(
        "execution.created",
        execution.id,
        now,
        {
            "execution_id": execution.id,
            "flow_id": flow.id,
            "flow_version": flow.version,
            "parent_execution_id": parent_execution_id,
        },
        1,
        tenant_id,
    )
    return execution, created_event, flow


async def create_execution(
    engine: Runtime,
    flow_id: str,
    context: Mapping[str, Any] | None,
    *,
    lease_self: bool,
    **options: Any,
) -> tuple[CreateResult, Run | None]:
    """Create an execution (see ``Engine.create``); nothing is created on an error.

    ``options`` are those of ``prepare_execution``. ``lease_self`` stores it already
    leased to ``engine`` and ``running`` and also returns the ``Run`` that drives it
    (``None`` without ``lease_self`` or on an idempotency hit).
    """
    execution, created_event, flow = await prepare_execution(engine, flow_id, context, **options)
    now = execution.created_at
    idempotency_key = execution.idempotency_key
    lease = None
    if lease_self:
        # ``start`` runs it right away: store it already leased and running, which
        # saves the separate acquire transaction.
        lease = Lease(execution_id=execution.id, owner=engine.lease_owner(), token=1,
                      expires_at=now + engine.options.lease_for)  # fmt: skip
        execution.status = ExecutionStatus.RUNNING
        execution.started_at = now
    stored, created = await engine.creator.create(execution, [created_event], lease)
    run = None
    if created:
        engine.bus.emit([created_event])
        if lease is not None:
            run = Run(engine, stored, lease, flow)
        else:
            await engine.notify_runnable(stored.id)
    else:
        # Persisted on the existing execution's log like every event (API.md).
        await engine.late_events.record(
            stored.id,
            "idempotency.hit",
            {"flow_id": flow.id, "idempotency_key": idempotency_key},
            now,
            stored.tenant_id,
        )
    return CreateResult(execution=stored, created=created), run


def check_context(context: Mapping[str, Any], options: EngineOptions) -> dict[str, bytes]:
    """Check a whole context against the limits; returns the encoded values.

    Raises:
        ContextLimitError: a limit is broken.
        InvalidValue: a value is not JSON (a ``ValueError``; NaN/Infinity included).
    """
    sizes = ContextSizes({})
    probe: dict[str, Any] = {}
    out = {}
    for key, value in context.items():
        if not isinstance(key, str):
            raise ValueError(f"context keys must be strings, got {key!r}")
        try:
            top, new_top, encoded = plan_write(
                probe, key, value, options.context_limits, sizes, literal=True
            )
        except OutputError as exc:
            raise errors.InvalidValue(str(exc)) from None
        probe[top] = new_top
        sizes.update(top, len(encoded))
        out[key] = encoded
    return out

"""Builders of executions, records and commits for the contract suite (fixed times)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from flowmonkey.model.events import Event
from flowmonkey.model.execution import (
    Cancellation,
    ErrorInfo,
    Execution,
    ExecutionStatus,
    StepRecord,
    Token,
    TokenStatus,
)
from flowmonkey.model.records import ResumeTokenRecord, Task
from flowmonkey.stores.base import Lease, StepCommit, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def new_id(prefix: str = "ex") -> str:
    """A unique id."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_execution(
    *,
    id: str | None = None,
    flow_id: str = "flow",
    status: ExecutionStatus = ExecutionStatus.PENDING,
    created_at: datetime = T0,
    context: dict[str, Any] | None = None,
    **fields: Any,
) -> Execution:
    """A minimal execution; ``fields`` override any other attribute."""
    values: dict[str, Any] = {
        "id": id or new_id(),
        "flow_id": flow_id,
        "flow_version": "1.0.0",
        "status": status,
        "current_step_id": "start",
        "tokens": [Token(id="t0", step_id="start")],
        "context": context if context is not None else {},
        "created_at": created_at,
        "updated_at": created_at,
    }
    values.update(fields)
    return Execution(**values)


def full_execution() -> Execution:
    """An execution with every field set to a non-default value."""
    return Execution(
        id=new_id("full"),
        flow_id="orders",
        flow_version="2.3.1",
        status=ExecutionStatus.WAITING,
        current_step_id="approve",
        tokens=[
            Token(
                id="t1",
                step_id="approve",
                status=TokenStatus.WAITING,
                branch="left",
                parent_id="t0",
                fork_id="fork-1",
                wake_at=at(600),
                wait_reason="waiting for approval",
                wait_kind="signal",
                wait_started_at=at(5),
                wait_deadline_at=at(3600),
                visit=7,
                wait_step={
                    "type": "userTask",
                    "outputKey": "approval",
                    "transitions": {"onResume": "ship", "ports": {"no": None}},
                },
            ),
            Token(id="t2", step_id=None, status=TokenStatus.DONE, branch="right", visit=3),
        ],
        context={"order": {"id": 42, "items": [1, 2, 3]}, "name": "Zoë ☃"},
        wake_at=at(600),
        wait_reason="waiting for approval",
        error=ErrorInfo(code="E1", message="boom", step_id="charge", details={"n": 1}, at=at(3)),
        last_error=ErrorInfo(code="E2", message="last", details=[1, "x"], at=at(4)),
        step_count=9,
        run_number=2,
        created_at=T0,
        updated_at=at(5),
        started_at=at(1),
        finished_at=at(6),
        tenant_id="tenant-a",
        metadata={"source": "api", "tags": ["x", "y"], "nested": {"k": None}},
        correlation_id="corr-1",
        user_id="user-1",
        idempotency_key="idem-1",
        idempotency_expires_at=at(86400),
        parent_execution_id="parent-1",
        parent_step_id="spawn",
        depth=3,
        cancellation=Cancellation(source="user", reason="changed my mind", at=at(6)),
        retry_attempts={"charge": 2, "ship": 1},
        execution_timeout=timedelta(hours=2),
        wait_timeout=timedelta(minutes=30, milliseconds=250),
        deadline_at=at(7200),
        checkpoint={"step_id": "charge", "data": {"page": 3}},
        event_seq=12,
    )


def step_record(step_id: str = "start", *, attempt: int = 1, started: float = 1) -> StepRecord:
    """A successful history entry."""
    return StepRecord(
        step_id=step_id,
        handler_type="noop",
        attempt=attempt,
        run_number=1,
        outcome="success",
        started_at=at(started),
        finished_at=at(started + 0.5),
        duration_ms=500.0,
        error=None,
        token_id="t0",
    )


def event(execution_id: str, sequence: int, type: str = "step.completed") -> Event:
    """An event with payload."""
    return Event(
        type, execution_id, at(sequence), {"execution_id": execution_id, "n": sequence}, sequence
    )


def resume_token(
    execution_id: str, token_hash: str | None = None, *, step_id: str = "approve"
) -> ResumeTokenRecord:
    """An active resume token record."""
    return ResumeTokenRecord(
        token_hash=token_hash or uuid.uuid4().hex,
        execution_id=execution_id,
        step_id=step_id,
        created_at=at(1),
        expires_at=at(3600),
    )


def task(execution_id: str, *, id: str | None = None, **fields: Any) -> Task:
    """A pending user task; ``fields`` override attributes."""
    values: dict[str, Any] = {
        "id": id or new_id("task"),
        "execution_id": execution_id,
        "step_id": "approve",
        "title": "Approve order",
        "created_at": T0,
    }
    values.update(fields)
    return Task(**values)


def ctx(**values: Any) -> dict[str, bytes]:
    """``StepCommit.context_set`` from plain values."""
    return {k: orjson.dumps(v) for k, v in values.items()}


async def started(
    store: Store, execution: Execution | None = None, *, owner: str = "w1", now: datetime = T0
) -> tuple[Execution, Lease]:
    """Create ``execution`` (or a fresh one) and lease it; returns the leased copy."""
    execution = execution or make_execution()
    await store.create(execution)
    acquired = await store.acquire(execution.id, owner=owner, now=now, lease_for=LEASE)
    assert acquired.lease is not None
    return acquired.execution, acquired.lease


def step(execution: Execution, **changes: Any) -> StepCommit:
    """A commit of ``execution`` (``changes`` are StepCommit fields)."""
    return StepCommit(execution=execution, **changes)

"""The commit's short way to the ``state`` column gives the same bytes as the long one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flowmonkey.model.execution import (
    Cancellation,
    ErrorInfo,
    Execution,
    ExecutionStatus,
    Token,
    TokenStatus,
)
from flowmonkey.stores import postgres_queries as q
from flowmonkey.stores.postgres_commit import encode_spec_of

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def _plain() -> Execution:
    return Execution(
        id="e1", flow_id="f", flow_version="1", status=ExecutionStatus.RUNNING,
        current_step_id="s1", tokens=[Token(id="t0", step_id="s1", visit=3)],
        created_at=T0, updated_at=T0, started_at=T0, step_count=3, event_seq=9,
    )  # fmt: skip


def _busy() -> Execution:
    waiting = Token(
        id="t1", step_id="w", status=TokenStatus.WAITING, branch="b", parent_id="t0",
        fork_id="f1", wake_at=T0 + timedelta(seconds=5), wait_reason="signal:go",
        wait_kind="signal", wait_started_at=T0, wait_deadline_at=T0 + timedelta(hours=1),
        visit=4, wait_step={"type": "waitForSignal"}, recoveries=1,
    )  # fmt: skip
    return Execution(
        id="e2", flow_id="f", flow_version="1", status=ExecutionStatus.CANCELLING,
        current_step_id="w", tokens=[Token(id="t0", step_id=None), waiting],
        created_at=T0, updated_at=T0, started_at=T0, finished_at=T0 + timedelta(minutes=1),
        wait_reason="signal:go", run_number=2, retry_attempts={"s": 2}, step_count=7,
        error=ErrorInfo(code="E", message="boom", step_id="s", details={"x": 1}, at=T0),
        last_error=ErrorInfo(code="L", message="earlier"), event_seq=40_000,
        cancellation=Cancellation(source="api", reason="stop", at=T0),
    )  # fmt: skip


@pytest.mark.parametrize("make", [_plain, _busy])
def test_encode_state_of_equals_encode_state_of_the_header(make: object) -> None:
    execution = make()  # type: ignore[operator]
    assert q.encode_state_of(execution) == q.encode_state(execution.header_dict())


def _spec_fields() -> Execution:
    return Execution(
        id="e3", flow_id="f", flow_version="1", status=ExecutionStatus.PENDING,
        current_step_id="s", tokens=[Token(id="t0", step_id="s")], created_at=T0,
        updated_at=T0, metadata={"source": "api", "tags": ["x"], "n": {"k": None}},
        user_id="u1", idempotency_key="idem", parent_step_id="spawn", depth=2,
        idempotency_expires_at=T0 + timedelta(hours=24, microseconds=7),
        execution_timeout=timedelta(hours=2, microseconds=3),
        wait_timeout=timedelta(minutes=30, milliseconds=250),
    )  # fmt: skip


def _falsy_spec() -> Execution:
    # Empty values are left out of the spec (and load back as the defaults).
    return Execution(
        id="e4", flow_id="f", flow_version="1", status=ExecutionStatus.PENDING,
        current_step_id="s", tokens=[], created_at=T0, updated_at=T0, metadata={},
        user_id="", depth=0, execution_timeout=timedelta(0),
    )  # fmt: skip


@pytest.mark.parametrize("make", [_plain, _busy, _spec_fields, _falsy_spec])
def test_encode_spec_of_equals_encode_spec_of_the_header(make: object) -> None:
    execution = make()  # type: ignore[operator]
    assert encode_spec_of(execution) == q.encode_spec(execution.header_dict())

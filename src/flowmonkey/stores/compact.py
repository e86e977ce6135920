"""Compact stored forms shared by the SQL stores (a store-internal encoding).

Stored JSON leaves out what the row already holds (its columns, the execution id in
event payloads) and ``None`` values, and keeps times as integer microseconds since the
epoch instead of ISO text: about half the bytes of a parked execution. Readers accept
the older, longer forms too, so rows written before the change still load.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from flowmonkey.model.events import Event
from flowmonkey.model.execution import StepRecord

__all__ = [
    "BATCH",
    "EventRow",
    "event_payload",
    "event_row",
    "expand_event_row",
    "restore_event_payload",
    "restore_times",
    "step_blob",
    "step_from_blob",
    "times_to_us",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_dumps = orjson.dumps
_loads = orjson.loads
_STATE_TIMES = ("started_at", "finished_at")
_TOKEN_TIMES = ("wake_at", "wait_started_at", "wait_deadline_at")


def _us(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH  # from its fields: half the cost of `// timedelta(microseconds=1)`
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _dt(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _as_us(value: Any) -> Any:
    if isinstance(value, datetime):
        return _us(value)
    if isinstance(value, str):
        return _us(datetime.fromisoformat(value))
    return value


def times_to_us(state: dict[str, Any]) -> dict[str, Any]:
    """Header times (``started_at``, ``finished_at``, token wait times) as microseconds,
    a ``wait_reason`` equal to a token's as that token's index, and no ``run_number``
    of 1 (the default), in place; returns
    ``state``. Token dicts must be the caller's own copies."""
    for key in _STATE_TIMES:
        value = state.get(key)
        if value is not None:
            state[key] = _as_us(value)
    if state.get("run_number") == 1:  # the model's default
        del state["run_number"]
    reason = state.get("wait_reason")
    for index, token in enumerate(state.get("tokens", ())):
        for key in _TOKEN_TIMES:
            value = token.get(key)
            if value is not None:
                token[key] = _as_us(value)
        if isinstance(reason, str) and token.get("wait_reason") == reason:
            # The execution's wait reason is a token's (usually): store where, not what.
            state["wait_reason"] = reason = index
    return state


def restore_times(data: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``times_to_us`` (ISO text of older rows is left for the model)."""
    for key in _STATE_TIMES:
        value = data.get(key)
        if isinstance(value, int):
            data[key] = _dt(value)
    tokens = data.get("tokens", ())
    for token in tokens:
        for key in _TOKEN_TIMES:
            value = token.get(key)
            if isinstance(value, int):
                token[key] = _dt(value)
    reason = data.get("wait_reason")
    if isinstance(reason, int):
        data["wait_reason"] = tokens[reason]["wait_reason"]
    return data


def step_blob(record: StepRecord) -> bytes:
    """A history record as a JSON array in ``StepRecord`` field order, times in
    microseconds, trailing ``None``s cut."""
    fields = [
        record.step_id, record.handler_type, record.attempt, record.run_number,
        record.outcome, _us(record.started_at), _us(record.finished_at),
        record.duration_ms, record.error, record.token_id,
    ]  # fmt: skip
    while fields[-1] is None:
        fields.pop()
    return _dumps(fields)


def step_from_blob(data: bytes) -> StepRecord:
    """Inverse of ``step_blob`` (also reads the object form of older rows)."""
    value = _loads(data)
    if isinstance(value, dict):
        return StepRecord.from_dict(value)
    value += [None] * (10 - len(value))
    step_id, handler_type, attempt, run_number, outcome, started, finished, took, error, token = (
        value
    )
    return StepRecord(
        step_id=step_id, handler_type=handler_type, attempt=attempt, run_number=run_number,
        outcome=outcome, started_at=_dt(started), finished_at=_dt(finished),
        duration_ms=took, error=error, token_id=token,
    )  # fmt: skip


def event_payload(execution_id: str | None, data: dict[str, Any]) -> dict[str, Any]:
    """An event's payload as stored: without the ``execution_id`` the row holds."""
    if execution_id is not None and data.get("execution_id") == execution_id:
        return {k: v for k, v in data.items() if k != "execution_id"}
    return data


def restore_event_payload(execution_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``event_payload``: every event payload names its execution."""
    if "execution_id" not in data:
        data["execution_id"] = execution_id
    return data


BATCH = "$batch"
"""``type`` of a journal row holding several events of one commit."""

EventRow = tuple[int, str, datetime, str | None, bytes]
"""``(sequence, type, timestamp, tenant_id, data)`` of one stored event row."""


def event_row(execution_id: str, events: Sequence[Event]) -> EventRow:
    """The ONE row storing ``events`` (one commit's, consecutive sequences).

    A single event is stored as itself. Several become one ``$batch`` row keyed by the
    last sequence (each row costs a tuple header and a primary-key entry holding the
    execution id, more than a small event's payload, and a step commits several events).
    Its data is a JSON array of ``[type, time, payload]`` per event, ``time`` in
    microseconds before the row's timestamp (the last event's), ``tenant_id`` appended
    only when it differs from the row's; sequences are consecutive, so implied.
    """
    last = events[-1]
    if len(events) == 1:
        return (last.sequence, last.type, last.timestamp, last.tenant_id,
                _dumps(event_payload(execution_id, last.data)))  # fmt: skip
    end = _us(last.timestamp)
    items: list[list[Any]] = []
    for n, event in enumerate(events, start=last.sequence - len(events) + 1):
        if event.sequence != n:
            raise ValueError(f"events of one commit must have consecutive sequences, got {n}")
        item = [event.type, end - _us(event.timestamp), event_payload(execution_id, event.data)]
        if event.tenant_id != last.tenant_id:
            item.append(event.tenant_id)
        items.append(item)
    return last.sequence, BATCH, last.timestamp, last.tenant_id, _dumps(items)


def expand_event_row(
    execution_id: str,
    sequence: int,
    type_: str,
    timestamp: datetime,
    tenant_id: str | None,
    data: bytes,
    after: int,
) -> list[Event]:
    """The events of one stored row with ``sequence > after``, in order."""
    if type_ != BATCH:
        payload = restore_event_payload(execution_id, _loads(data))
        return [Event(type_, execution_id, timestamp, payload, sequence, tenant_id)]
    items = _loads(data)
    end = _us(timestamp)
    first = sequence - len(items) + 1
    out = []
    for seq, item in enumerate(items, start=first):
        if seq > after:
            kind, before, payload = item[:3]
            tenant = item[3] if len(item) > 3 else tenant_id
            at = _dt(end - before)
            out.append(Event(kind, execution_id, at, restore_event_payload(execution_id, payload),
                             seq, tenant))  # fmt: skip
    return out

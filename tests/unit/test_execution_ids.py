"""Execution ids are version-7 UUIDs: unique, and ordered by creation time (so a store's
index inserts stay on a few hot pages however many executions it holds)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flowmonkey.engine.creation import time_ordered_id


def test_ids_are_version_7_uuids_with_the_creation_millisecond() -> None:
    at = datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    value = uuid.UUID(time_ordered_id(at))
    assert value.version == 7 and value.variant == uuid.RFC_4122
    assert value.int >> 80 == int(at.timestamp() * 1000)


def test_ids_sort_by_time_and_never_repeat() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    same_instant = {time_ordered_id(at) for _ in range(10_000)}
    assert len(same_instant) == 10_000
    later = [time_ordered_id(at + timedelta(milliseconds=n)) for n in range(1, 50)]
    assert later == sorted(later)
    assert max(same_instant) < later[0]

"""Cron parsing and HTTP.md's DST rulings, pinned for both transitions in two zones.

Rulings: a local time skipped by DST fires once at the first valid instant after it; a
repeated local time fires once, at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowmonkey.cron import CronError, parse_cron


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def fires(expr: str, zone: str, after: datetime, count: int) -> list[str]:
    return [t.strftime("%m-%d %H:%M") for t in parse_cron(expr, zone).next_n(after, count)]


# New York: spring forward 2026-03-08 02:00 EST -> 03:00 EDT;
#           fall back 2026-11-01 02:00 EDT -> 01:00 EST.
# Berlin: spring forward 2026-03-29 02:00 CET -> 03:00 CEST;
#         fall back 2026-10-25 03:00 CEST -> 02:00 CET.


@pytest.mark.parametrize(
    ("zone", "expr", "after", "expected"),
    [
        # 02:30 does not exist: fires once at 03:00 local (07:00 UTC NY / 01:00 UTC Berlin)
        (
            "America/New_York",
            "30 2 * * *",
            utc(2026, 3, 7, 12),
            ["03-08 07:00", "03-09 06:30", "03-10 06:30"],
        ),
        (
            "Europe/Berlin",
            "30 2 * * *",
            utc(2026, 3, 28, 12),
            ["03-29 01:00", "03-30 00:30", "03-31 00:30"],
        ),
    ],
)
def test_a_skipped_local_time_fires_once_at_the_first_valid_instant(
    zone: str, expr: str, after: datetime, expected: list[str]
) -> None:
    assert fires(expr, zone, after, 3) == expected


@pytest.mark.parametrize(
    ("zone", "expr", "after", "expected"),
    [
        # 01:30 happens twice in New York on 11-01: only the first (EDT, 05:30 UTC) fires
        (
            "America/New_York",
            "30 1 * * *",
            utc(2026, 10, 31, 12),
            ["11-01 05:30", "11-02 06:30", "11-03 06:30"],
        ),
        # 02:30 happens twice in Berlin on 10-25: only the first (CEST, 00:30 UTC) fires
        (
            "Europe/Berlin",
            "30 2 * * *",
            utc(2026, 10, 24, 12),
            ["10-25 00:30", "10-26 01:30", "10-27 01:30"],
        ),
    ],
)
def test_a_repeated_local_time_fires_once_at_its_first_occurrence(
    zone: str, expr: str, after: datetime, expected: list[str]
) -> None:
    assert fires(expr, zone, after, 3) == expected


def test_sub_hourly_schedules_never_fire_twice_for_one_instant_across_transitions() -> None:
    for zone, after in (
        ("Europe/Berlin", utc(2026, 3, 28, 23)),
        ("Europe/Berlin", utc(2026, 10, 24, 23)),
        ("America/New_York", utc(2026, 3, 8, 5)),
        ("America/New_York", utc(2026, 11, 1, 4)),
    ):
        times = parse_cron("*/20 * * * *", zone).next_n(after, 20)
        assert times == sorted(set(times)), zone
    # Berlin's repeated hour 02:00-03:00 CET is not fired again (first occurrence only)
    assert fires("*/20 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 50), 5) == [
        "10-25 00:00",
        "10-25 00:20",
        "10-25 00:40",
        "10-25 02:00",
        "10-25 02:20",
    ]


def test_six_fields_put_seconds_first_and_aliases_work() -> None:
    spec = parse_cron("*/15 * * * * *")
    assert [t.second for t in spec.next_n(utc(2026, 1, 1), 4)] == [15, 30, 45, 0]
    assert parse_cron("@hourly").next_after(utc(2026, 1, 1, 5, 10)) == utc(2026, 1, 1, 6)
    assert parse_cron("@daily", "Asia/Tokyo").next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 15)
    assert parse_cron("0 9 * * MON-FRI").next_after(utc(2026, 1, 3)) == utc(2026, 1, 5, 9)


@pytest.mark.parametrize(
    ("expr", "zone", "message"),
    [
        ("61 * * * *", "UTC", "invalid cron expression '61 * * * *'"),
        ("* * *", "UTC", "has 3 fields"),
        ("@reboot", "UTC", "unknown cron alias"),
        ("0 0 30 2 *", "UTC", "invalid cron expression"),
        ("0 * * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("0 * * * *", "../../etc/passwd", "unknown time zone"),
    ],
)
def test_bad_expressions_and_zones_are_named(expr: str, zone: str, message: str) -> None:
    with pytest.raises(CronError, match=message.replace("*", r"\*").replace("(", r"\(")):
        parse_cron(expr, zone)

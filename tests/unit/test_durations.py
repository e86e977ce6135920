"""parse_duration / format_duration: milliseconds, compound units, ISO-8601, bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowmonkey.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, timedelta(0)),
        (1500, timedelta(milliseconds=1500)),
        (2.5, timedelta(microseconds=2500)),
        ("30000", timedelta(seconds=30)),
        (" 250 ", timedelta(milliseconds=250)),
        (timedelta(hours=3), timedelta(hours=3)),
    ],
)
def test_milliseconds_and_timedeltas(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("1d2h30m", timedelta(days=1, hours=2, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("1M30S", timedelta(seconds=90)),  # case-insensitive
        ("1m500ms", timedelta(seconds=60.5)),
    ],
)
def test_compound_unit_strings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT5M", timedelta(minutes=5)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT0,5S", timedelta(milliseconds=500)),  # ISO allows a decimal comma
        ("P1W", timedelta(weeks=1)),
        ("P2D", timedelta(days=2)),
        ("PT1H30M15S", timedelta(hours=1, minutes=30, seconds=15)),
        ("P1DT0S", timedelta(days=1)),
        ("pt5m", timedelta(minutes=5)),
        (" PT10S ", timedelta(seconds=10)),
    ],
)
def test_iso_8601_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_iso_m_means_months_before_t_and_minutes_after() -> None:
    assert parse_duration("PT1M") == timedelta(minutes=1)
    with pytest.raises(ValueError, match="no fixed length") as info:
        parse_duration("P1M")
    assert '"PT1M"' in str(info.value)  # the hint for the likely mistake


@pytest.mark.parametrize("text", ["P1Y", "P2M", "P1Y2M3D", "P1MT5M"])
def test_iso_years_and_months_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match=r"timeout: .*years or months, which have no fixed"):
        parse_duration(text, field="timeout")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("P", "has no amount"),
        ("PT", "has no amount"),
        ("P1DT", 'has a "T" but no hours'),
        ("P1H", 'go after a "T"'),
        ("PT5X", "is not an ISO-8601 duration"),
        ("PT-5S", "is not an ISO-8601 duration"),
        ("P5", "is not an ISO-8601 duration"),
        ("soon", 'is not a duration (use milliseconds, e.g. "1d2h30m", "500ms", or ISO-8601'),
        ("1h 30m", "is not a duration"),
        ("", "is not a duration"),
        ("m", "is not a duration"),
        ("-5m", "must not be negative"),
        (-1, "must not be negative"),
        (-0.5, "must not be negative"),
        (float("nan"), "must be a finite number"),
        (float("inf"), "must be a finite number"),
        (10**30, "is too large"),
        ("99999999999999d", "is too large"),
        (True, "got a boolean"),
        (None, "got NoneType"),
        ([1], "got list"),
    ],
)
def test_bad_inputs_have_clear_messages(value: object, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value, field="timeout")
    message = str(info.value)
    assert message.startswith("timeout: "), message
    assert fragment in message, message


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0ms"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(days=1, hours=2, minutes=30), "1d2h30m"),
        (timedelta(weeks=2), "14d"),
        (timedelta(days=1, milliseconds=1), "1d1ms"),
    ],
)
def test_format_duration(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
    assert parse_duration(text) == delta


@pytest.mark.parametrize(
    "value", ["PT5M", "P1DT2H", "PT0.5S", "P1W", "1d2h30m", "1.5h", 86_400_001, 0, "2w3d"]
)
def test_format_round_trips_every_accepted_form(value: object) -> None:
    delta = parse_duration(value)
    assert parse_duration(format_duration(delta)) == delta


def test_durations_beyond_the_maximum_are_a_typed_error() -> None:
    from flowmonkey.durations import MAX_DURATION, MAX_DURATION_MS
    from flowmonkey.errors import FlowMonkeyError, InvalidDuration

    assert MAX_DURATION == timedelta(days=3650)
    assert parse_duration("3650d") == MAX_DURATION
    assert parse_duration(MAX_DURATION_MS) == MAX_DURATION
    for value in (
        "9999999d",
        "P9999999D",
        "3650d1ms",
        MAX_DURATION_MS + 1,
        1.0e300,
        "9" * 5000,
        "9" * 400 + "d",
        MAX_DURATION + timedelta(milliseconds=1),
    ):
        with pytest.raises(InvalidDuration, match="the maximum is 3650 days") as info:
            parse_duration(value, field="timeout")
        assert info.value.code == "INVALID_DURATION"
        assert isinstance(info.value, FlowMonkeyError) and isinstance(info.value, ValueError)

"""Durations on the wire: ISO 8601 and .NET TimeSpan in, ISO 8601 out."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app import durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT10M", timedelta(minutes=10)),
        ("PT4H", timedelta(hours=4)),
        ("PT5S", timedelta(seconds=5)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("PT1H2M3S", timedelta(hours=1, minutes=2, seconds=3)),
        ("PT90M", timedelta(minutes=90)),
        ("P1D", timedelta(days=1)),
        ("P2D", timedelta(days=2)),
        ("P28D", timedelta(days=28)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P1DT2H3M4.25S", timedelta(days=1, hours=2, minutes=3, seconds=4.25)),
        ("P1W", timedelta(weeks=1)),
        ("P1W2D", timedelta(days=9)),
        ("PT0S", timedelta(0)),
        ("P0D", timedelta(0)),
        ("PT1.5H", timedelta(minutes=90)),
    ],
)
def test_parse_iso_8601(text, expected):
    assert durations.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:10:00", timedelta(minutes=10)),
        ("04:00:00", timedelta(hours=4)),
        ("00:00:05", timedelta(seconds=5)),
        ("12:34:56", timedelta(hours=12, minutes=34, seconds=56)),
        ("23:59:59", timedelta(hours=23, minutes=59, seconds=59)),
        ("00:00:01.5", timedelta(seconds=1.5)),
        ("1.00:00:00", timedelta(days=1)),
        ("1.02:00:00", timedelta(days=1, hours=2)),
        ("2.00:00:00", timedelta(days=2)),
        ("7.12:30:15", timedelta(days=7, hours=12, minutes=30, seconds=15)),
        ("0:5:0", timedelta(minutes=5)),
    ],
)
def test_parse_hh_mm_ss(text, expected):
    assert durations.parse(text) == expected


def test_both_forms_mean_the_same():
    assert durations.parse("00:10:00") == durations.parse("PT10M")
    assert durations.parse("1.02:00:00") == durations.parse("P1DT2H")


def test_surrounding_whitespace_is_ignored():
    assert durations.parse(" PT10M ") == timedelta(minutes=10)
    assert durations.parse(" 00:10:00\n") == timedelta(minutes=10)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "P",
        "PT",
        "P1DT",
        "T10M",
        "10M",
        "PT10",
        "PT10X",
        "PT-10M",
        "-PT10M",
        "PT10M junk",
        "PT10M5H",  # designators out of order
        "P1H",  # hours need the T
        "PTM",
        "ten minutes",
        "00:60:00",
        "00:00:60",
        "24:00:00",
        "1.24:00:00",
        "::",
        "00:10:00:00",
        "-00:10:00",
        "a.00:10:00",
        "00:1a:00",
    ],
)
def test_rejects_what_is_not_a_duration(text):
    with pytest.raises(ValueError, match=re.escape(f"'{text}' is not a duration")):
        durations.parse(text)


@pytest.mark.parametrize("value", [None, 600, 10.0, timedelta(minutes=10), ["PT10M"], b"PT10M"])
def test_rejects_non_strings(value):
    with pytest.raises(ValueError, match="must be a string"):
        durations.parse(value)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(seconds=5), "PT5S"),
        (timedelta(seconds=1.5), "PT1.5S"),
        (timedelta(milliseconds=250), "PT0.25S"),
        (timedelta(minutes=10), "PT10M"),
        (timedelta(minutes=3), "PT3M"),
        (timedelta(hours=4), "PT4H"),
        (timedelta(hours=1, seconds=1), "PT1H1S"),
        (timedelta(hours=1, minutes=2, seconds=3), "PT1H2M3S"),
        (timedelta(days=1), "P1D"),
        (timedelta(days=2), "P2D"),
        (timedelta(days=28), "P28D"),
        (timedelta(days=1, hours=2), "P1DT2H"),
        (timedelta(days=1, seconds=30), "P1DT30S"),
        (timedelta(days=7), "P7D"),
        (timedelta(seconds=10), "PT10S"),
        (timedelta(seconds=20), "PT20S"),
        (timedelta(minutes=10, seconds=50), "PT10M50S"),
    ],
)
def test_format_iso(delta, text):
    assert durations.format_iso(delta) == text


ROUND_TRIP = [
    timedelta(0),
    timedelta(seconds=1),
    timedelta(seconds=5),
    timedelta(seconds=59),
    timedelta(seconds=60),
    timedelta(seconds=61),
    timedelta(milliseconds=1),
    timedelta(milliseconds=123),
    timedelta(seconds=10, milliseconds=500),
    timedelta(minutes=10),
    timedelta(minutes=59, seconds=59),
    timedelta(hours=23, minutes=59, seconds=59, milliseconds=999),
    timedelta(hours=24),
    timedelta(days=1, hours=2, minutes=3, seconds=4),
    timedelta(days=2),
    timedelta(days=7),
    timedelta(days=28),
    timedelta(days=400, seconds=1),
]


@pytest.mark.parametrize("delta", ROUND_TRIP)
def test_format_then_parse_round_trip(delta):
    text = durations.format_iso(delta)
    assert re.fullmatch(r"P(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?", text), text
    assert durations.parse(text) == delta


@pytest.mark.parametrize(
    "text", ["PT10M", "P1DT2H", "PT5S", "P2D", "PT1H2M3S", "PT0.5S", "00:10:00", "1.02:00:00"]
)
def test_parse_then_format_gives_canonical_iso(text):
    delta = durations.parse(text)
    assert durations.parse(durations.format_iso(delta)) == delta
    assert durations.format_iso(durations.parse(durations.format_iso(delta))) == (
        durations.format_iso(delta)
    )


def test_canonical_form_of_both_spellings():
    assert durations.format_iso(durations.parse("00:10:00")) == "PT10M"
    assert durations.format_iso(durations.parse("1.02:00:00")) == "P1DT2H"
    assert durations.format_iso(durations.parse("PT90M")) == "PT1H30M"
    assert durations.format_iso(durations.parse("P1W")) == "P7D"


@pytest.mark.parametrize("text", ["P9999999999D", "99999999999.00:00:00", "P99999999999W"])
def test_durations_too_long_for_a_timedelta_are_refused(text):
    with pytest.raises(ValueError):
        durations.parse(text)

"""Go's spellings of floats and times (values checked against Go's strconv / time output)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from seance.secrets.gofmt import format_float_f, format_float_g, format_float_json, format_time, parse_time


@pytest.mark.parametrize(
    ("value", "f", "g"),
    [
        (3.14159, "3.14159", "3.14159"),
        (1e21, "1000000000000000000000", "1e+21"),
        (0.000001, "0.000001", "1e-06"),
        (0.0001, "0.0001", "0.0001"),
        (123456789.0, "123456789", "1.23456789e+08"),
        (100000.0, "100000", "100000"),
        (1000000.0, "1000000", "1e+06"),
        (7.0, "7", "7"),
        (-2.5, "-2.5", "-2.5"),
        (0.0, "0", "0"),
        (-0.0, "-0", "-0"),
        (1.5e300, "15" + "0" * 299, "1.5e+300"),
        (5e-324, "0." + "0" * 323 + "5", "5e-324"),
    ],
)
def test_float_spellings(value: float, f: str, g: str) -> None:
    assert format_float_f(value) == f
    assert format_float_g(value) == g


@pytest.mark.parametrize(
    ("value", "text"), [(1e21, "1e+21"), (1e-7, "1e-7"), (2.5, "2.5"), (1e20, "100000000000000000000")]
)
def test_json_float_spelling(value: float, text: str) -> None:
    assert format_float_json(value) == text


def test_time_spelling_and_parsing() -> None:
    assert format_time(datetime(2025, 1, 2, tzinfo=UTC)) == "2025-01-02T00:00:00Z"
    minus5 = timezone(timedelta(hours=-5))
    assert format_time(datetime(2001, 12, 14, 21, 59, 43, 100000, tzinfo=minus5)) == "2001-12-14T21:59:43.1-05:00"
    assert parse_time("2001-12-14t21:59:43.10-05:00") == datetime(2001, 12, 14, 21, 59, 43, 100000, tzinfo=minus5)
    assert parse_time("2001-12-14 21:59:43.10 -5") == datetime(2001, 12, 14, 21, 59, 43, 100000, tzinfo=minus5)
    assert parse_time("2025-13-01") is None and parse_time("not a time") is None

"""Ledger timestamps and the seconds between them: one home (i2vkit/timestamps.py)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from i2vkit.store import utcnow
from i2vkit.timestamps import parse_timestamp, seconds_between


def test_what_the_ledger_writes_reads_back_as_utc():
    when = parse_timestamp(utcnow())
    assert when is not None and when.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - when).total_seconds()) < 5


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2025-06-01T10:00:00.500+00:00", datetime(2025, 6, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2025-06-01T10:00:00Z", datetime(2025, 6, 1, 10, tzinfo=UTC)),
        ("2025-06-01 10:00:00", datetime(2025, 6, 1, 10, tzinfo=UTC)),  # no offset: UTC
        ("2025-06-01T12:00:00+02:00", datetime(2025, 6, 1, 10, tzinfo=UTC)),
        (" 2025-06-01T10:00:00 ", datetime(2025, 6, 1, 10, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_with_and_without_a_timezone(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("value", [None, "", "yesterday", "2025-13-01T00:00:00"])
def test_what_is_no_time_is_none(value):
    assert parse_timestamp(value) is None


def test_seconds_between_mixes_aware_and_naive_stamps():
    # an old row (no offset) and a new one (with it): subtracting them directly raises
    assert seconds_between("2025-06-01 10:00:00", "2025-06-01T10:00:02.250+00:00") == 2.25
    assert seconds_between("2025-06-01T10:00:00+00:00", "2025-06-01T12:00:01+02:00") == 1.0
    assert seconds_between("2025-06-01T10:00:00.0004+00:00", "2025-06-01T10:00:01+00:00") == 1.0
    start = datetime(2025, 6, 1, 10, tzinfo=timezone(timedelta(hours=1)))
    assert seconds_between(start, "2025-06-01T09:01:00+00:00") == 60.0


@pytest.mark.parametrize(
    "start,end", [(None, "2025-06-01T10:00:00"), ("2025-06-01", ""), ("x", "y")]
)
def test_seconds_between_is_none_when_a_stamp_is_missing(start, end):
    assert seconds_between(start, end) is None

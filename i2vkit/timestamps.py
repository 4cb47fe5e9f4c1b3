"""The ledger's timestamps: reading them, and the seconds between two of them.

The ledger writes UTC in ISO 8601 with its offset (:func:`i2vkit.store.utcnow`,
``2025-06-01T10:00:00.123+00:00``); an older file or a hand edit may hold one without an
offset (``2025-06-01 10:00:00``), which is UTC too. Every reading goes through
:func:`parse_timestamp`, so the two kinds compare and subtract (Python refuses to subtract
a naive time from an aware one) and a value that is no time at all is None, never an error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utcnow() -> str:
    """Now, as the ledger writes every time: ISO 8601 in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_timestamp(value: Any) -> datetime | None:
    """A ledger timestamp as an aware datetime (no offset: UTC); None when empty or not a time."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip())
        except ValueError:
            return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def seconds_between(start: Any, end: Any) -> float | None:
    """Seconds from ``start`` to ``end`` (ledger timestamps), to the millisecond; None when
    either is missing or unreadable."""
    a, b = parse_timestamp(start), parse_timestamp(end)
    return None if a is None or b is None else round((b - a).total_seconds(), 3)

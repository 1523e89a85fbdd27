"""RFC 3339 timestamps <-> epoch milliseconds, and minute buckets."""

from __future__ import annotations

import time
from datetime import UTC, datetime

MINUTE_MS = 60_000


def to_iso(ms: int) -> str:
    """Epoch milliseconds -> `2026-11-28T06:00:00.123Z`."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_ms(text: str) -> int:
    """RFC 3339 with an offset -> epoch milliseconds; ValueError when unparsable or without offset."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return int(moment.timestamp() * 1000)


def minute_of(ms: int) -> int:
    """The start of the minute that holds `ms`, in epoch seconds (the aggregates' key)."""
    return ms // MINUTE_MS * 60


def seconds_iso(seconds: float) -> str:
    """Epoch seconds -> `2026-11-28T06:00:00Z` (whole seconds, as the insights document shows times)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SystemClock:
    """The real clock (tests pass a fixed one)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

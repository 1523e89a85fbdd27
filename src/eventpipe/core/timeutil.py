"""RFC 3339 timestamps <-> epoch milliseconds, and minute buckets."""

from __future__ import annotations

import time
from datetime import UTC, datetime

MINUTE_MS = 60_000
LATEST_MS = 253_370_764_800_000  # 9999-01-01: later times cannot be bucketed by hour or day


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


def parse_window(since: str | None, until: str | None, *, now_ms: int, default_ms: int, max_ms: int) -> tuple[int, int]:
    """`(since_ms, until_ms)` from optional RFC 3339 texts: `until` defaults to now, `since` to
    `default_ms` before it. ValueError, with a message for the user, when either is unreadable, out
    of 1970 to 9998, in the wrong order, or the window is longer than `max_ms`."""
    until_ms = parse_iso_ms(until) if until else now_ms
    since_ms = parse_iso_ms(since) if since else until_ms - default_ms
    if not 0 <= since_ms <= until_ms < LATEST_MS:
        raise ValueError("since must be before until, both between 1970 and 9998")
    if until_ms - since_ms > max_ms:
        raise ValueError(f"the window is longer than {max_ms // 3_600_000} hours")
    return since_ms, until_ms

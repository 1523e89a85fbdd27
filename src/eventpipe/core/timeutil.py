"""RFC 3339 timestamps <-> epoch milliseconds, and minute buckets."""

from __future__ import annotations

import re
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


INSIGHTS_DEFAULT_WINDOW_MS = 60 * 60 * 1000
# A window is read minute by minute (in DynamoDB, a sketch of up to 16 KB each): longer spans are for the
# S3 export and Athena, or `eventpipe query`.
INSIGHTS_MAX_WINDOW_MS = 24 * 60 * 60 * 1000
INSIGHTS_LONGER = " (longer spans: the S3 export and Athena, or eventpipe query)"
_SPAN = re.compile(r"^(\d{1,9})([smhd])$")
_UNIT_MS = {"s": 1000, "m": MINUTE_MS, "h": 3_600_000, "d": 86_400_000}


class WindowError(ValueError):
    """A time window a user asked for that cannot be served; the message says why."""


def parse_moment(text: str, *, now_ms: int, name: str) -> int:
    """An RFC 3339 time with an offset, or a span back from now (`30m`, `2h`, `1d`), as epoch milliseconds."""
    span = _SPAN.match(text)
    if span:
        return now_ms - int(span[1]) * _UNIT_MS[span[2]]
    try:
        return parse_iso_ms(text)
    except (ValueError, OverflowError, OSError):
        raise WindowError(
            f"{name} {text[:40]!r} is neither an RFC 3339 time with an offset (2026-11-28T05:00:00Z) nor a span"
            " back from now (30m, 2h, 1d)"
        ) from None


def parse_window(
    since: str | None, until: str | None, *, now_ms: int, default_ms: int, max_ms: int, longer: str = ""
) -> tuple[int, int]:
    """`(since_ms, until_ms)` of the window `GET /insights`, `eventpipe insights` and the export serve:
    `until` defaults to now, `since` to `default_ms` before it; either may be an RFC 3339 time or a span
    back from now. WindowError, with a message that says which rule was broken: a time unreadable, out of
    1970 to 9998, since after until, or a window longer than `max_ms` (then `longer` says where to go)."""
    until_ms = parse_moment(until, now_ms=now_ms, name="until") if until else now_ms
    since_ms = parse_moment(since, now_ms=now_ms, name="since") if since else until_ms - default_ms
    if not (0 <= since_ms < LATEST_MS and 0 <= until_ms < LATEST_MS):
        raise WindowError("since and until must be between 1970 and 9998")
    if since_ms > until_ms:
        raise WindowError("since must not be after until")
    if until_ms - since_ms > max_ms:
        hours = (until_ms - since_ms) / 3_600_000
        raise WindowError(
            f"the window is {hours:,.1f} hours long; at most {max_ms // 3_600_000:,} hours are served{longer}"
        )
    return since_ms, until_ms

"""Export the per-minute insights to the bucket as JSON lines, one object per UTC hour.

Objects are `insights/dt=<YYYY-MM-DD>/hour=<HH>/minutes.json`: Hive-style partitions, so Athena
(with partition projection on `dt` and `hour`) or a Glue crawler can query them without loading
partitions by hand. An export always writes whole hours and overwrites their objects, so an
object is complete whenever it exists and exporting the same window again is harmless; a later
export of the same hour replaces it with the newer counts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import groupby
from typing import TYPE_CHECKING, Any

import datasketches
import orjson

from eventpipe.core.timeutil import seconds_iso

if TYPE_CHECKING:
    from eventpipe.core.insight_rows import MinuteRow
    from eventpipe.core.ports import InsightsStore, RawBucket

_HOUR_S = 3_600
_READ_S = 24 * _HOUR_S


def export_insights(store: InsightsStore, bucket: RawBucket, *, since_minute: int, until_minute: int) -> list[str]:
    """Write every UTC hour overlapping `[since_minute, until_minute)` that has rows; the keys written.

    The window is widened to whole hours, and read 24 hours at a time so that memory stays bounded
    however long a backfill window is.
    """
    start = since_minute - since_minute % _HOUR_S
    end = -(-until_minute // _HOUR_S) * _HOUR_S  # rounded up to the next hour
    keys: list[str] = []
    for part in range(start, end, _READ_S):
        rows = store.read(part, min(part + _READ_S, end), funnel=False).minutes
        for hour, in_hour in groupby(sorted(rows, key=lambda r: r.minute), key=lambda r: r.minute // _HOUR_S):
            key = hour_key(hour * _HOUR_S)
            bucket.put(key, b"".join(orjson.dumps(_line(row)) + b"\n" for row in in_hour))
            keys.append(key)
    return keys


def hour_key(hour_start: int) -> str:
    """The object key of the hour that starts at `hour_start` (epoch seconds)."""
    return datetime.fromtimestamp(hour_start, UTC).strftime("insights/dt=%Y-%m-%d/hour=%H/minutes.json")


def _line(row: MinuteRow) -> dict[str, Any]:
    """One minute as Athena reads it; revenue rounded to cents as in the insights document."""
    users = datasketches.hll_sketch.deserialize(row.users).get_estimate() if row.users else 0
    return {
        "minute": seconds_iso(row.minute),
        "events": dict(sorted(row.events.items())),
        "events_total": sum(row.events.values()),
        "unique_users": round(users),
        "revenue": round(row.revenue, 2),
        "rejected": dict(sorted(row.rejected.items())),
        "duplicates": row.duplicates,
    }

"""Export the insights to the analytics bucket as JSON lines, for Athena and QuickSight.

Three tables, Hive-style partitions (Athena projects `dt` and `hour`); docs/aws.md names their columns:

- `minute_counts/dt=<YYYY-MM-DD>/hour=<HH>/part.json`: per minute, the additive columns (events by
  type, revenue, rejections, duplicates): any sum over minutes is right.
- `hour_uniques/dt=<YYYY-MM-DD>/hour=<HH>/part.json`: per hour, unique users (the union of the
  hour's minute sketches) and the hour's funnel. Not additive: never sum them over hours.
- `day_uniques/dt=<YYYY-MM-DD>/part.json`: per UTC day, unique users (the union of its hours').

Beside them, `sketches/users/dt=<YYYY-MM-DD>/hour=<HH>.hll` keeps each hour's user sketch, so that
a day's unique users are united from 24 small objects rather than 1,440 minutes.

Which hours: every hour an aggregate changed since its last export (`InsightsStore.dirty_hours`,
marked in the same write as the aggregate), however old: late events, quarantine replays and
restarted batches reach the export too. An hour is forgotten only once its objects are written
and only if no batch changed it meanwhile (`clear_dirty` checks the version). Objects are whole
and overwritten, so exporting an hour again is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import datasketches
import orjson

from eventpipe.core.aggregate import HOUR_S, union_of
from eventpipe.core.errors import ObjectNotFoundError
from eventpipe.core.funnel import FUNNEL_STEPS
from eventpipe.core.insights import people_by_minute
from eventpipe.core.timeutil import seconds_iso

if TYPE_CHECKING:
    from collections.abc import Iterable

    from eventpipe.core.insight_rows import MinuteRow
    from eventpipe.core.ports import InsightsStore, RawBucket

MINUTE_COUNTS = "minute_counts"
HOUR_UNIQUES = "hour_uniques"
DAY_UNIQUES = "day_uniques"
USER_SKETCHES = "sketches/users"
# Dirty hours exported per run, oldest first: a backlog (a replay of last month) is worked off over
# a few runs instead of outlasting one function's timeout.
MAX_HOURS_PER_RUN = 48
_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class ExportResult:
    keys: list[str]
    hours: int  # hours exported
    pending: int  # dirty hours left for the next run (changed again meanwhile, or past the limit)


def export_dirty(store: InsightsStore, analytics: RawBucket, *, max_hours: int = MAX_HOURS_PER_RUN) -> ExportResult:
    """Export every dirty hour (up to `max_hours`, oldest first) and the days that hold them, then clear them."""
    dirty = store.dirty_hours()
    batch = dirty[:max_hours]
    exported = export_hours(analytics, store, [hour for hour, _ in batch])
    cleared = sum(store.clear_dirty(hour, version) for hour, version in batch)
    return ExportResult(exported.keys, exported.hours, len(dirty) - cleared)


def export_window(store: InsightsStore, analytics: RawBucket, *, since_minute: int, until_minute: int) -> ExportResult:
    """Export every UTC hour overlapping `[since_minute, until_minute)` that has rows (a backfill)."""
    start = since_minute - since_minute % HOUR_S
    return export_hours(analytics, store, range(start, until_minute, HOUR_S))


def export_hours(analytics: RawBucket, store: InsightsStore, hours: Iterable[int]) -> ExportResult:
    """Write the objects of each hour that has rows, then the day objects of their days."""
    keys: list[str] = []
    days: set[int] = set()
    for hour in hours:
        rows = store.read(hour, hour + HOUR_S)
        minutes = people_by_minute(rows)  # every app's, no bots': as the insights count by default
        if not minutes:
            continue
        users = union_of(row.users for row in minutes if row.users)
        keys.append(_put(analytics, _hour_key(MINUTE_COUNTS, hour), [_minute_line(row) for row in minutes]))
        line: dict[str, Any] = {"hour": seconds_iso(hour), "unique_users": _estimate(users)}
        line.update((f"funnel_{step}", count) for step, count in zip(FUNNEL_STEPS, rows.funnel, strict=True))
        keys.append(_put(analytics, _hour_key(HOUR_UNIQUES, hour), [line]))
        sketch_key = _utc(hour, f"{USER_SKETCHES}/dt=%Y-%m-%d/hour=%H.hll")
        if users is not None:
            analytics.put(sketch_key, users)
        else:  # no user in the hour (any more): no stale sketch may count in its day
            analytics.delete(sketch_key)
        days.add(hour - hour % _DAY_S)
    for day in sorted(days):
        users = union_of(_day_sketches(analytics, day))
        line = {"day": _utc(day, "%Y-%m-%d"), "unique_users": _estimate(users)}
        keys.append(_put(analytics, _utc(day, f"{DAY_UNIQUES}/dt=%Y-%m-%d/part.json"), [line]))
    return ExportResult(keys, sum(1 for key in keys if key.startswith(HOUR_UNIQUES)), 0)


def _day_sketches(analytics: RawBucket, day: int) -> Iterable[bytes]:
    for key in analytics.keys(_utc(day, f"{USER_SKETCHES}/dt=%Y-%m-%d/")):
        try:
            yield analytics.get(key)
        except ObjectNotFoundError:  # deleted by a concurrent export since it was listed
            continue


def _put(analytics: RawBucket, key: str, lines: list[dict[str, Any]]) -> str:
    analytics.put(key, b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return key


def _utc(start: int, pattern: str) -> str:
    return datetime.fromtimestamp(start, UTC).strftime(pattern)


def _hour_key(table: str, hour: int) -> str:
    return _utc(hour, f"{table}/dt=%Y-%m-%d/hour=%H/part.json")


def _estimate(users: bytes | None) -> int:
    if users is None:
        return 0
    estimate: float = datasketches.hll_sketch.deserialize(users).get_estimate()
    return round(estimate)


def _minute_line(row: MinuteRow) -> dict[str, Any]:
    """One minute's additive columns; revenue rounded to cents as in the insights document."""
    return {
        "minute": seconds_iso(row.minute),
        "events": dict(sorted(row.events.items())),
        "events_total": sum(row.events.values()),
        "revenue": round(row.revenue, 2),
        "rejected": dict(sorted(row.rejected.items())),
        "duplicates": row.duplicates,
    }

"""Reading the DynamoDB insights store: a window's minute items, bounded by minutes.

The key shapes are described in dynamodb_insights.py. A read Queries, per UTC day of the window, the
minute items (counters and sketches together), and the minute items of the funnel's two-hour lookback
(only the earlier steps projected): a 1-hour window at most 60 + 120 items, whatever the number of
sessions or batches (docs/insights.md). With a `SketchCache` holding any minute of the window, it
Queries the small counter items of the window and the lookback instead, and only the minute items
whose version `v` moved since they were cached (sketch_cache.py): the dashboard's polls read the small
items and the few minutes folded since the previous poll. A cold cache (a new container) reads the
minute items once, as without a cache, and keeps them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.dynamodb_calls import attempt
from eventpipe.adapters.aws.errors import AWS_ERRORS, storage_error
from eventpipe.adapters.aws.insights_keys import minute_segment, utc
from eventpipe.core.funnel import FUNNEL_STEPS, SESSION_LOOKBACK_S, StepSketch, funnel_counts
from eventpipe.core.insight_counters import add_counter
from eventpipe.core.insight_rows import InsightsRows, MinuteRow
from eventpipe.core.segments import ALL_PEOPLE

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventpipe.adapters.aws.retry import Backoff
    from eventpipe.adapters.aws.sketch_cache import SketchCache, Sketches
    from eventpipe.core.segments import InsightsView

DAY_S = 86_400
VERSION = "v"  # on a minute item and its counter copy: folds that changed the minute (the sketch cache's validator)
_SKETCHES = ("users", *(f"s{step}" for step in range(len(FUNNEL_STEPS))))

__all__ = ["DAY_S", "VERSION", "DynamoInsightsReader", "minute_segment", "utc"]


class DynamoInsightsReader:
    """`read` of the insights store, and the paged Query it and the dirty hours use."""

    def __init__(self, table_name: str, client: Any, backoff: Backoff, sketch_cache: SketchCache | None) -> None:
        self._table = table_name
        self._client = client
        self._backoff = backoff
        # With a cache, a read fetches only the minute items that changed since it last read them
        # (the dashboard polls every 3 s); without, it reads every minute item of the window each time.
        self._cache = sketch_cache

    def read(
        self, since_minute: int, until_minute: int, *, funnel: bool = True, view: InsightsView = ALL_PEOPLE
    ) -> InsightsRows:
        if until_minute <= since_minute:
            return InsightsRows(minutes=[], funnel=[0] * len(FUNNEL_STEPS))
        cache = self._cache
        if cache is not None and cache.holds_any(range(since_minute, until_minute, 60)):
            return self._read_cached(cache, since_minute, until_minute, funnel=funnel, view=view)
        last = until_minute - 1
        rows: dict[tuple[int, str], MinuteRow] = {}
        steps: list[StepSketch] = []
        high = f"{last:012d}~"  # "~" sorts after "#<segment>": every segment of the last minute
        for day in _days(since_minute, last):
            for item in self.query(f"sketch#{day}", f"{since_minute:012d}", high):
                minute, segment = key = minute_segment(item["sk"]["S"])
                row = rows[key] = MinuteRow(minute, segment=segment)
                _add_counters(row, item)
                users = item.get("users", {}).get("B")
                row.users = None if users is None else bytes(users)
                if view.counts(segment):
                    steps.extend(_steps_of(minute, segment, item))
                if cache is not None:  # a cold cache: keep what was read, for the next poll
                    cache.put(key, _version_of(item), _sketches_of(item))
        ordered = [rows[key] for key in sorted(rows)]
        if not funnel:
            return InsightsRows(ordered, [0] * len(FUNNEL_STEPS))
        lookback = since_minute - SESSION_LOOKBACK_S
        # Without a cache the lookback needs only the earlier steps' sketches: the projection keeps the pages
        # small (DynamoDB bills the whole items all the same); with one, the whole items are kept for later.
        earlier = None if cache is not None else [f"s{step}" for step in range(len(FUNNEL_STEPS) - 1)]
        for day in _days(lookback, since_minute - 1):
            for item in self.query(f"sketch#{day}", f"{lookback:012d}", f"{since_minute - 1:012d}~", earlier):
                minute, segment = key = minute_segment(item["sk"]["S"])
                if view.counts(segment):
                    steps.extend(_steps_of(minute, segment, item))
                if cache is not None:
                    cache.put(key, _version_of(item), _sketches_of(item))
        counts = funnel_counts(steps, since_minute=since_minute, until_minute=until_minute)
        return InsightsRows(ordered, counts)

    def _read_cached(
        self, cache: SketchCache, since_minute: int, until_minute: int, *, funnel: bool, view: InsightsView
    ) -> InsightsRows:
        """`read` from the counter items, and the minute items whose counter version moved since cached.

        The counter items are read first (strongly consistent), then the stale minute items: the fold
        writes a minute item before its counter copy, so the minute items read hold at least every
        fold that the copy's version counts (sketch_cache.py).
        """
        last = until_minute - 1
        rows: dict[tuple[int, str], MinuteRow] = {}
        versions: dict[tuple[int, str], int] = {}
        for day in _days(since_minute, last):
            for item in self.query(f"minute#{day}", f"{since_minute:012d}", f"{last:012d}~"):
                minute, segment = key = minute_segment(item["sk"]["S"])
                _add_counters(rows.setdefault(key, MinuteRow(minute, segment=segment)), item)
                versions[key] = _version_of(item)
        lookback = since_minute - SESSION_LOOKBACK_S
        if funnel:  # the lookback's versions (read whole: a projection would not lower the read units)
            for day in _days(lookback, since_minute - 1):
                for item in self.query(f"minute#{day}", f"{lookback:012d}", f"{since_minute - 1:012d}~"):
                    versions[minute_segment(item["sk"]["S"])] = _version_of(item)
        sketches = self._cached_sketches(cache, versions)
        for key, row in rows.items():
            row.users = sketches[key].get("users")
        ordered = [rows[key] for key in sorted(rows)]
        if not funnel:
            return InsightsRows(ordered, [0] * len(FUNNEL_STEPS))
        steps = [
            StepSketch(minute, segment, step, blob)
            for (minute, segment), held in sketches.items()
            if view.counts(segment)
            for step in range(len(FUNNEL_STEPS))
            if (blob := held.get(f"s{step}")) is not None
        ]
        return InsightsRows(ordered, funnel_counts(steps, since_minute=since_minute, until_minute=until_minute))

    def _cached_sketches(
        self, cache: SketchCache, versions: dict[tuple[int, str], int]
    ) -> dict[tuple[int, str], Sketches]:
        """The sketches of every key of `versions`: from the cache when still valid, else read (and cached)."""
        found: dict[tuple[int, str], Sketches] = {}
        stale: list[tuple[int, str]] = []
        for key, version in versions.items():
            held = cache.get(key, version)
            if held is None:
                stale.append(key)
            else:
                found[key] = held
        for day, first, last in _runs(sorted({minute for minute, _ in stale})):
            for item in self.query(f"sketch#{day}", f"{first:012d}", f"{last:012d}~", _SKETCHES):
                key = minute_segment(item["sk"]["S"])
                if key in versions and key not in found:
                    found[key] = _sketches_of(item)
                    cache.put(key, versions[key], found[key])
        for key in stale:
            if key not in found:  # no sketch item (refusals only, or a minute without users or sessions)
                found[key] = {}
                cache.put(key, versions[key], found[key])
        return found

    def query(self, pk: str, low: str, high: str, attributes: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of partition `pk` with `low <= sk <= high`, page by page (strongly consistent)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":low": {"S": low}, ":high": {"S": high}},
            "ConsistentRead": True,
        }
        if attributes is not None:
            names = {f"#p{number}": name for number, name in enumerate(["sk", *attributes])}
            request["ProjectionExpression"] = ", ".join(names)
            request["ExpressionAttributeNames"] = names
        action = f"cannot read insights from {self._table}"
        while True:
            try:
                page = attempt(self._backoff, action, lambda: self._client.query(**request))
            except AWS_ERRORS as exc:  # `attempt` lets a failed condition through; a Query has none
                raise storage_error(exc, action) from exc
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _days(first: int, last: int) -> list[str]:
    """The UTC days (`YYYY-MM-DD`) that hold any minute of `first..last`."""
    return [utc(start, "%Y-%m-%d") for start in range(first - first % DAY_S, last + 1, DAY_S)]


def _runs(minutes: Sequence[int]) -> list[tuple[str, int, int]]:
    """Sorted minutes as (UTC day, first, last) runs of consecutive minutes within a day: one Query each."""
    runs: list[tuple[str, int, int]] = []
    for minute in minutes:
        day = utc(minute, "%Y-%m-%d")
        if runs and runs[-1][0] == day and runs[-1][2] == minute - 60:
            runs[-1] = (day, runs[-1][1], minute)
        else:
            runs.append((day, minute, minute))
    return runs


def _sketches_of(item: dict[str, Any]) -> Sketches:
    """A minute item's sketches, by attribute (`ids` is the fold's, not a sketch)."""
    return {name: bytes(item[name]["B"]) for name in _SKETCHES if name in item}


def _version_of(item: dict[str, Any]) -> int:
    """A counter item's version (0 for items written before versions existed)."""
    return int(item.get(VERSION, {}).get("N", 0))


def _steps_of(minute: int, segment: str, item: dict[str, Any]) -> Iterator[StepSketch]:
    for step in range(len(FUNNEL_STEPS)):
        sketch = item.get(f"s{step}", {}).get("B")
        if sketch is not None:
            yield StepSketch(minute, segment, step, bytes(sketch))


def _add_counters(row: MinuteRow, item: dict[str, Any]) -> None:
    """A minute item's counters into its row, through the stores' one codec (its other numbers are skipped)."""
    for attribute, value in item.items():
        if "N" in value:
            add_counter(row, attribute, float(value["N"]))  # exact: counts stay far below 2**53

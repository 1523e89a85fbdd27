"""Build the insights document (docs/http-api.md) from the stored per-minute rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import datasketches

from eventpipe.core.aggregate import HLL_LG_K
from eventpipe.core.funnel import FUNNEL_STEPS
from eventpipe.core.histogram import quantile
from eventpipe.core.insight_rows import MinuteRow
from eventpipe.core.segments import ALL_PEOPLE, InsightsView, parse_segment
from eventpipe.core.timeutil import minute_of, seconds_iso

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.core.documents import InsightsDocument, InsightsMinute, Percentiles
    from eventpipe.core.insight_rows import InsightsRows
    from eventpipe.core.ports import InsightsStore


def insights_document(
    store: InsightsStore, *, since_ms: int, until_ms: int, currency: str, view: InsightsView = ALL_PEOPLE
) -> InsightsDocument:
    """Read the window's rows and build its document; the minute that holds `until` is included."""
    rows = store.read(minute_of(since_ms), minute_of(until_ms) + 60, view=view)
    return build_insights(rows, since_ms=since_ms, until_ms=until_ms, currency=currency, view=view)


@dataclass(slots=True)
class _Minute:
    """One minute of the document: the counted segments' rows merged."""

    events: Counter[str] = field(default_factory=Counter)
    revenue: float = 0.0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    users: datasketches.hll_union = field(default_factory=lambda: datasketches.hll_union(HLL_LG_K))
    has_users: bool = False
    lag_ms: Counter[int] = field(default_factory=Counter)


def build_insights(
    rows: InsightsRows, *, since_ms: int, until_ms: int, currency: str, view: InsightsView = ALL_PEOPLE
) -> InsightsDocument:
    """The document `GET /insights` and `eventpipe insights --json` print.

    The segments the view counts make the totals, the minutes and the funnel; the bot events of the
    view's app(s) are `totals.bots` either way. Refusals (duplicates, rejections) belong to no app
    and are in every view.
    """
    by_type: Counter[str] = Counter()
    by_country: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    revenue = 0.0
    duplicates = 0
    bots = 0
    users = datasketches.hll_union(HLL_LG_K)
    lag: Counter[int] = Counter()
    merged: dict[int, _Minute] = {}
    for row in rows.minutes:
        if row.rejected or row.duplicates:  # refusals, kept in the default segment: in every view
            minute = merged.setdefault(row.minute, _Minute())
            rejected.update(row.rejected)
            minute.rejected.update(row.rejected)
            duplicates += row.duplicates
            minute.duplicates += row.duplicates
        if not view.covers(row.segment):
            continue
        if parse_segment(row.segment)[1]:
            bots += sum(row.events.values())
        if not view.counts(row.segment) or not (row.events or row.users or row.lag_ms):
            continue
        minute = merged.setdefault(row.minute, _Minute())
        by_type.update(row.events)
        minute.events.update(row.events)
        by_country.update(row.countries)
        revenue += row.revenue
        minute.revenue += row.revenue
        if row.users:
            sketch = datasketches.hll_sketch.deserialize(row.users)
            users.update(sketch)
            minute.users.update(sketch)
            minute.has_users = True
        lag.update(row.lag_ms)
        minute.lag_ms.update(row.lag_ms)
    minutes: list[InsightsMinute] = [
        {
            "minute": seconds_iso(at),
            "events": dict(sorted(minute.events.items())),
            "unique_users": round(minute.users.get_result().get_estimate()) if minute.has_users else 0,
            "revenue": round(minute.revenue, 2),
            "rejected": dict(sorted(minute.rejected.items())),
            "duplicates": minute.duplicates,
            "lag_ms": _percentiles(minute.lag_ms),
        }
        for at, minute in sorted(merged.items())
    ]
    return {
        "since": seconds_iso(since_ms // 1000),
        "until": seconds_iso(until_ms // 1000),
        "currency": currency,
        "totals": {
            "events": sum(by_type.values()),
            "by_type": dict(sorted(by_type.items())),
            "unique_users": round(users.get_result().get_estimate()),
            "revenue": round(revenue, 2),
            "duplicates": duplicates,
            "rejected": dict(sorted(rejected.items())),
            "bots": bots,
            "by_country": dict(by_country.most_common()),
        },
        "funnel": dict(zip(FUNNEL_STEPS, rows.funnel, strict=True)),
        "lag_ms": _percentiles(lag),
        "minutes": minutes,
    }


def people_by_minute(rows: InsightsRows, view: InsightsView = ALL_PEOPLE) -> list[MinuteRow]:
    """One row per minute, oldest first: the segments `view` counts merged (users sketches united),
    refusals included. The export's additive rows: bots stay out of them, as out of the insights."""
    from eventpipe.core.aggregate import union_of

    merged: dict[int, MinuteRow] = {}
    sketches: dict[int, list[bytes]] = {}
    for row in rows.minutes:
        counted = view.counts(row.segment)
        if not counted and not (row.rejected or row.duplicates):
            continue
        into = merged.setdefault(row.minute, MinuteRow(row.minute))
        for name, count in row.rejected.items():
            into.rejected[name] = into.rejected.get(name, 0) + count
        into.duplicates += row.duplicates
        if not counted:
            continue
        _add(into.events, row.events)
        _add(into.countries, row.countries)
        for bucket, count in row.lag_ms.items():
            into.lag_ms[bucket] = into.lag_ms.get(bucket, 0) + count
        into.revenue += row.revenue
        if row.users:
            sketches.setdefault(row.minute, []).append(row.users)
    for minute, users in sketches.items():
        merged[minute].users = users[0] if len(users) == 1 else union_of(users)
    return [merged[minute] for minute in sorted(merged)]


def _add(into: dict[str, int], counts: Mapping[str, int]) -> None:
    for key, count in counts.items():
        into[key] = into.get(key, 0) + count


def _percentiles(histogram: Mapping[int, int]) -> Percentiles:
    return {"p50": _rounded(quantile(histogram, 0.5)), "p95": _rounded(quantile(histogram, 0.95))}


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)

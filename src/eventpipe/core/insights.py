"""Build the insights document (docs/http-api.md) from the stored per-minute rows."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import datasketches

from eventpipe.core.aggregate import HLL_LG_K
from eventpipe.core.funnel import FUNNEL_STEPS
from eventpipe.core.histogram import quantile
from eventpipe.core.timeutil import minute_of, seconds_iso

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.core.insight_rows import InsightsRows
    from eventpipe.core.ports import InsightsStore


def insights_document(store: InsightsStore, *, since_ms: int, until_ms: int, currency: str) -> dict[str, Any]:
    """Read the window's rows and build its document; the minute that holds `until` is included."""
    rows = store.read(minute_of(since_ms), minute_of(until_ms) + 60)
    return build_insights(rows, since_ms=since_ms, until_ms=until_ms, currency=currency)


def build_insights(rows: InsightsRows, *, since_ms: int, until_ms: int, currency: str) -> dict[str, Any]:
    """The document `GET /insights` and `eventpipe insights --json` print."""
    by_type: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    revenue = 0.0
    duplicates = 0
    users = datasketches.hll_union(HLL_LG_K)
    lag: Counter[int] = Counter()
    minutes = []
    for row in sorted(rows.minutes, key=lambda r: r.minute):
        by_type.update(row.events)
        rejected.update(row.rejected)
        revenue += row.revenue
        duplicates += row.duplicates
        minute_users = 0
        if row.users:
            sketch = datasketches.hll_sketch.deserialize(row.users)
            users.update(sketch)
            minute_users = round(sketch.get_estimate())
        lag.update(row.lag_ms)
        minutes.append(
            {
                "minute": seconds_iso(row.minute),
                "events": dict(sorted(row.events.items())),
                "unique_users": minute_users,
                "revenue": round(row.revenue, 2),
                "rejected": dict(sorted(row.rejected.items())),
                "duplicates": row.duplicates,
                "lag_ms": _percentiles(row.lag_ms),
            }
        )
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
        },
        "funnel": dict(zip(FUNNEL_STEPS, rows.funnel, strict=True)),
        "lag_ms": _percentiles(lag),
        "minutes": minutes,
    }


def _percentiles(histogram: Mapping[int, int]) -> dict[str, int | None]:
    return {"p50": _rounded(quantile(histogram, 0.5)), "p95": _rounded(quantile(histogram, 0.95))}


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)

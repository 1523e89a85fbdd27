"""The few facts of a curated event that persistence and aggregation need, carried beside its payload.

Staging them apart means the later steps never parse the full payload again.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from eventpipe.core.timeutil import parse_iso_ms


class Fact(NamedTuple):
    event_id: str
    event_type: str
    event_time_ms: int
    user_key: str | None
    session_id: str | None
    revenue: float
    app_id: str | None = None
    bot: bool = False
    country: str | None = None


def fact_of(event: dict[str, Any]) -> Fact:
    """Read the facts of an enriched event (ValueError if its time cannot be read)."""
    enrichment = event.get("enrichment") or {}
    event_time_ms = enrichment.get("event_time_ms")
    if event_time_ms is None:  # the timestamps enricher is switched off
        event_time_ms = parse_iso_ms(event["occurred_at"])
    revenue = enrichment.get("revenue")
    geo = enrichment.get("geo")
    app_id = event.get("app_id")
    # Built from a tuple in field order: NamedTuple's keyword constructor costs about 1 µs an event.
    return Fact._make(
        (
            event["event_id"],
            event["event_type"],
            event_time_ms,
            event.get("user_id") or event.get("anonymous_id"),  # user_key
            event.get("session_id"),
            float(revenue["amount"]) if revenue else 0.0,
            app_id if isinstance(app_id, str) and app_id else None,
            enrichment.get("bot") is True,
            geo.get("country") if isinstance(geo, dict) else None,
        )
    )

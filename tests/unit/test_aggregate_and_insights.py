"""aggregate_batch (one batch's per-minute aggregate) and build_insights (the document of docs/http-api.md)."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from eventpipe.adapters.local import Database, SqliteInsightsStore
from eventpipe.core.aggregate import FUNNEL_STEPS, aggregate_batch, new_user_sketch
from eventpipe.core.facts import Fact
from eventpipe.core.histogram import bucket_of, quantile
from eventpipe.core.insight_rows import InsightsRows, MinuteRow
from eventpipe.core.insights import build_insights
from eventpipe.core.timeutil import parse_iso_ms

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

M = 1_795_845_600  # 2026-11-28T06:00:00Z, epoch seconds
M_MS = M * 1000
NOW_MS = M_MS + 10 * 60_000


def fact(
    event_type: str = "page_view",
    *,
    at_ms: int = M_MS,
    user: str | None = "u-1",
    session: str | None = None,
    revenue: float = 0.0,
) -> Fact:
    return Fact(str(uuid.uuid4()), event_type, at_ms, user, session, revenue)


def aggregate(
    facts: Iterable[Fact],
    *,
    received_at_ms: int = NOW_MS,
    now_ms: int = NOW_MS,
    rejected: dict[str, int] | None = None,
    duplicates: int = 0,
) -> Any:
    return aggregate_batch(
        facts, received_at_ms=received_at_ms, now_ms=now_ms, rejected=rejected or {}, duplicates=duplicates
    )


# --- aggregate_batch ------------------------------------------------------------------------------


def test_events_are_grouped_by_the_minute_of_their_event_time() -> None:
    # GIVEN events on both sides of minute boundaries
    facts = [
        fact(at_ms=M_MS),
        fact(at_ms=M_MS + 59_999),
        fact("purchase", at_ms=M_MS + 30_000),
        fact(at_ms=M_MS + 60_000),
        fact("signup", at_ms=M_MS - 1),
    ]
    # WHEN aggregated (received much later: the receive time does not place events)
    result = aggregate(facts, received_at_ms=NOW_MS)
    # THEN each lands in the minute (epoch seconds) that holds its event time
    assert sorted(result.minutes) == [M - 60, M, M + 60]
    assert result.minutes[M].events == {"page_view": 2, "purchase": 1}
    assert result.minutes[M + 60].events == {"page_view": 1}
    assert result.minutes[M - 60].events == {"signup": 1}


def test_revenue_is_summed_per_minute() -> None:
    facts = [
        fact("purchase", revenue=10.25),
        fact("purchase", at_ms=M_MS + 1, revenue=5.5),
        fact("purchase", at_ms=M_MS + 60_000, revenue=1.0),
        fact("page_view"),
    ]
    result = aggregate(facts)
    assert result.minutes[M].revenue == pytest.approx(15.75)
    assert result.minutes[M + 60].revenue == pytest.approx(1.0)


def test_unique_users_are_within_two_percent_for_ten_thousand_users() -> None:
    # GIVEN 10,000 distinct users with three events each, and events without a user
    facts = [fact(user=f"user-{n}", at_ms=M_MS + (n * 7 + k) % 60_000) for n in range(10_000) for k in range(3)]
    facts += [fact(user=None) for _ in range(500)]
    # WHEN aggregated into one minute
    result = aggregate(facts)
    # THEN the sketch estimates 10,000 within 2%, and every event is counted
    estimate = result.minutes[M].users.get_estimate()
    assert estimate == pytest.approx(10_000, rel=0.02)
    assert result.minutes[M].events == {"page_view": 30_500}


def test_events_without_a_user_do_not_count_as_users() -> None:
    result = aggregate([fact(user=None), fact(user=""), fact(user="u-7"), fact(user="u-7")])
    assert result.minutes[M].users.get_estimate() == pytest.approx(1.0)


def test_lag_is_now_minus_event_time_and_never_negative() -> None:
    # GIVEN 101 events with lags 0, 10, ..., 1000 ms, and one from the future
    now = M_MS + 50_000
    facts = [fact(at_ms=now - lag) for lag in range(0, 1001, 10)]
    facts.append(fact(at_ms=now + 5_000))
    # WHEN aggregated
    lag = aggregate(facts, now_ms=now).minutes[M].lag_ms
    # THEN the histogram holds every lag, the future one as 0, and its quantiles are within 2.2%
    assert sum(lag.values()) == 102
    assert lag[bucket_of(0)] == 2
    assert max(lag) == bucket_of(1000)
    assert quantile(lag, 0.5) == pytest.approx(490, rel=0.025)  # the 51st of 102 values
    assert quantile(lag, 0.95) == pytest.approx(950, rel=0.025)


def test_funnel_sketches_hold_the_sessions_of_funnel_events_by_minute_and_step() -> None:
    facts = [
        fact("page_view", session="s1"),
        fact("page_view", session="s1"),  # the same tuple again: kept once
        fact("add_to_cart", session="s1", at_ms=M_MS + 60_000),
        fact("purchase", session="s2", at_ms=M_MS + 61_000),
        fact("signup", session="s1"),  # not a funnel step
        fact("page_view", session=None),  # no session
        fact("purchase", session=""),  # empty session
    ]
    result = aggregate(facts)
    # THEN each minute holds a sketch per step reached in it, of its distinct sessions
    sessions = {
        (minute, step): sketch.get_estimate()
        for minute, bucket in result.minutes.items()
        for step, sketch in bucket.sessions.items()
    }
    assert sessions == {(M, 0): 1.0, (M + 60, 1): 1.0, (M + 60, 2): 1.0}
    assert FUNNEL_STEPS == ("page_view", "add_to_cart", "purchase")


def test_rejections_and_duplicates_are_kept_at_the_batch_minute() -> None:
    # GIVEN a batch received at 06:07:30 with events of 06:00 and refusals
    result = aggregate(
        [fact()],
        received_at_ms=M_MS + 7 * 60_000 + 30_000,
        rejected={"schema_violation": 3, "malformed_json": 1},
        duplicates=4,
    )
    # THEN the refusals belong to minute 06:07, the events to 06:00
    assert result.batch_minute == M + 7 * 60
    assert result.rejected == {"schema_violation": 3, "malformed_json": 1}
    assert result.duplicates == 4
    assert sorted(result.minutes) == [M]


def test_a_batch_without_new_events_has_no_minutes() -> None:
    result = aggregate([], rejected={"too_large": 2}, duplicates=0)
    assert (result.minutes, result.rejected, result.duplicates) == ({}, {"too_large": 2}, 0)


# --- build_insights -------------------------------------------------------------------------------


def row(
    minute: int,
    *,
    events: dict[str, int] | None = None,
    users: Iterable[str] = (),
    lags: Iterable[float] = (),
    revenue: float = 0.0,
    rejected: dict[str, int] | None = None,
    duplicates: int = 0,
) -> MinuteRow:
    users_sketch = new_user_sketch()
    for user in users:
        users_sketch.update(user)
    return MinuteRow(
        minute,
        events=events or {},
        revenue=revenue,
        rejected=rejected or {},
        duplicates=duplicates,
        users=users_sketch.serialize_compact() if events else None,
        lag_ms=dict(Counter(bucket_of(lag) for lag in lags)),
    )


def document(rows: list[MinuteRow], funnel: list[int] | None = None, currency: str = "EUR") -> dict[str, Any]:
    return build_insights(
        InsightsRows(minutes=rows, funnel=funnel or [0, 0, 0]),
        since_ms=M_MS - 3_600_000,
        until_ms=M_MS,
        currency=currency,
    )


def test_the_document_has_exactly_the_shape_of_the_architecture() -> None:
    # GIVEN one minute with events and rejections
    rows = [
        row(
            M - 60,
            events={"page_view": 3},
            users=["u1", "u2"],
            lags=[100.0],
            revenue=0.0,
            rejected={"schema_violation": 1},
        )
    ]
    # WHEN the document is built
    doc = document(rows, funnel=[2, 1, 0], currency="USD")
    # THEN its keys, and those of every nested object, are the documented ones
    assert set(doc) == {"since", "until", "currency", "totals", "funnel", "lag_ms", "minutes"}
    # (issue 11 adds totals.bots and totals.by_country)
    totals = {"events", "by_type", "unique_users", "revenue", "duplicates", "rejected", "bots", "by_country"}
    assert set(doc["totals"]) == totals
    assert list(doc["funnel"]) == ["page_view", "add_to_cart", "purchase"]
    assert set(doc["lag_ms"]) == {"p50", "p95"}
    assert len(doc["minutes"]) == 1
    # (each minute also carries its duplicates and lag, for the dashboard: an addition to the contract)
    minute_keys = {"minute", "events", "unique_users", "revenue", "rejected", "duplicates", "lag_ms"}
    assert set(doc["minutes"][0]) == minute_keys
    assert set(doc["minutes"][0]["lag_ms"]) == {"p50", "p95"}
    # AND the values have the documented types
    assert doc["currency"] == "USD"
    assert parse_iso_ms(doc["since"]) == M_MS - 3_600_000
    assert parse_iso_ms(doc["until"]) == M_MS
    assert doc["since"].endswith("Z")
    assert doc["funnel"] == {"page_view": 2, "add_to_cart": 1, "purchase": 0}
    assert doc["minutes"][0] == {
        "minute": "2026-11-28T05:59:00Z",
        "events": {"page_view": 3},
        "unique_users": 2,
        "revenue": 0.0,
        "rejected": {"schema_violation": 1},
        "duplicates": 0,
        "lag_ms": doc["lag_ms"],  # the window's one minute has the window's lag
    }
    assert isinstance(doc["totals"]["revenue"], float)
    assert isinstance(doc["lag_ms"]["p50"], int)


def test_totals_add_up_the_minutes_and_minutes_are_sorted() -> None:
    # GIVEN three minutes, given out of order, one with refusals only
    rows = [
        row(
            M - 60, events={"purchase": 2, "page_view": 5}, users=["a", "b"], lags=[300.0], revenue=20.004, duplicates=1
        ),
        row(M - 180, events={"page_view": 4}, users=["a"], lags=[100.0], revenue=0.0),
        row(M - 120, rejected={"schema_violation": 3, "malformed_json": 1}, duplicates=2),
    ]
    # WHEN the document is built
    doc = document(rows)
    # THEN totals sum every minute and the minutes come oldest first
    assert doc["totals"] == {
        "events": 11,
        "by_type": {"page_view": 9, "purchase": 2},
        "unique_users": 2,
        "revenue": 20.0,
        "duplicates": 3,
        "rejected": {"malformed_json": 1, "schema_violation": 3},
        "bots": 0,
        "by_country": {},
    }
    assert [m["minute"] for m in doc["minutes"]] == [
        "2026-11-28T05:57:00Z",
        "2026-11-28T05:58:00Z",
        "2026-11-28T05:59:00Z",
    ]
    assert doc["minutes"][1] == {
        "minute": "2026-11-28T05:58:00Z",
        "events": {},
        "unique_users": 0,
        "revenue": 0.0,
        "rejected": {"malformed_json": 1, "schema_violation": 3},
        "duplicates": 2,
        "lag_ms": {"p50": None, "p95": None},  # no curated event in that minute
    }
    assert doc["minutes"][2]["revenue"] == 20.0


def test_unique_users_merge_across_minutes_within_two_percent() -> None:
    # GIVEN the same 10,000 users active in each of three minutes
    users = [f"user-{n}" for n in range(10_000)]
    rows = [row(M - 60 * k, events={"page_view": 10_000}, users=users, lags=[1.0]) for k in (1, 2, 3)]
    # WHEN the document is built
    doc = document(rows)
    # THEN the total is the union of users (10,000), not the sum of the minutes (30,000)
    assert doc["totals"]["unique_users"] == pytest.approx(10_000, rel=0.02)
    assert all(m["unique_users"] == pytest.approx(10_000, rel=0.02) for m in doc["minutes"])


def test_lag_quantiles_merge_across_minutes() -> None:
    # GIVEN lags 0..490 in one minute and 500..1000 in another (step 10)
    rows = [
        row(M - 60, events={"page_view": 50}, users=["u"], lags=[float(v) for v in range(0, 500, 10)]),
        row(M - 120, events={"page_view": 51}, users=["u"], lags=[float(v) for v in range(500, 1001, 10)]),
    ]
    # THEN p50 and p95 are those of all the lags together, in whole milliseconds
    lag = document(rows)["lag_ms"]
    assert lag["p50"] == pytest.approx(500, abs=10)
    assert lag["p95"] == pytest.approx(950, abs=10)


def test_an_empty_window_gives_zeros_and_no_lag() -> None:
    doc = document([])
    assert doc["totals"] == {
        "events": 0,
        "by_type": {},
        "unique_users": 0,
        "revenue": 0.0,
        "duplicates": 0,
        "rejected": {},
        "bots": 0,
        "by_country": {},
    }
    assert doc["funnel"] == {"page_view": 0, "add_to_cart": 0, "purchase": 0}
    assert doc["lag_ms"] == {"p50": None, "p95": None}
    assert doc["minutes"] == []


def test_a_window_with_refusals_only_has_no_lag() -> None:
    doc = document([row(M - 60, rejected={"too_large": 1}, duplicates=2)])
    assert doc["lag_ms"] == {"p50": None, "p95": None}
    assert doc["totals"]["events"] == 0
    assert doc["totals"]["duplicates"] == 2


def test_from_aggregates_through_the_store_to_the_document(tmp_path: Path) -> None:
    # GIVEN two batches aggregated and applied to the local insights store
    db = Database(tmp_path / "db.sqlite")
    store = SqliteInsightsStore(db)
    first = [
        fact("page_view", user="u1", session="s1", at_ms=M_MS - 120_000 + 100),
        fact("add_to_cart", user="u1", session="s1", at_ms=M_MS - 120_000 + 200),
        fact("purchase", user="u1", session="s1", at_ms=M_MS - 60_000, revenue=59.9),
    ]
    second = [
        fact("page_view", user="u2", session="s2", at_ms=M_MS - 60_000 + 500),
        fact("page_view", user="u1", session="s1", at_ms=M_MS - 60_000 + 900),
    ]
    received = M_MS - 30_000
    store.apply("b1", aggregate(first, received_at_ms=received, now_ms=M_MS, rejected={"schema_violation": 2}))
    store.apply("b2", aggregate(second, received_at_ms=received, now_ms=M_MS, duplicates=1))
    # WHEN the last hour is read and built
    doc = build_insights(store.read(M - 3600, M), since_ms=M_MS - 3_600_000, until_ms=M_MS, currency="EUR")
    db.close()
    # THEN the document holds both batches, each event once
    assert doc["totals"] == {
        "events": 5,
        "by_type": {"add_to_cart": 1, "page_view": 3, "purchase": 1},
        "unique_users": 2,
        "revenue": 59.9,
        "duplicates": 1,
        "rejected": {"schema_violation": 2},
        "bots": 0,
        "by_country": {},
    }
    assert doc["funnel"] == {"page_view": 2, "add_to_cart": 1, "purchase": 1}
    assert [(m["minute"], m["events"], m["unique_users"]) for m in doc["minutes"]] == [
        ("2026-11-28T05:58:00Z", {"add_to_cart": 1, "page_view": 1}, 1),
        ("2026-11-28T05:59:00Z", {"page_view": 2, "purchase": 1}, 2),
    ]
    # The refusals count at the batch minute (05:59), in the same row as that minute's events.
    assert doc["minutes"][1]["rejected"] == {"schema_violation": 2}
    expected_lags = sorted(M_MS - f.event_time_ms for f in first + second)
    assert doc["lag_ms"]["p50"] == pytest.approx(expected_lags[2], rel=0.025)

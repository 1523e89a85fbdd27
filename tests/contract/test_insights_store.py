"""The `InsightsStore` port's contract (core/ports.py), on every backend that keeps it alike: memory,
SQLite and the Cosmos DB stand-in (the DynamoDB store's own tests hold it to the SQLite store's documents),
segments (an app's events, bots') included."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import datasketches
import pytest

from eventpipe.core.aggregate import aggregate_batch
from eventpipe.core.facts import Fact
from eventpipe.core.funnel import SESSION_LOOKBACK_S
from eventpipe.core.segments import InsightsView

if TYPE_CHECKING:
    from eventpipe.core.aggregate import BatchAggregate
    from eventpipe.core.insight_rows import InsightsRows, MinuteRow
    from eventpipe.core.ports import InsightsStore

M = 1_795_845_600  # 2026-11-28T06:00:00Z in epoch seconds: a minute start
M_MS = M * 1000


def uid(n: int) -> str:
    return str(uuid.UUID(int=n))


def fact(
    n: int,
    event_type: str = "page_view",
    *,
    at_ms: int = M_MS,
    user: str | None = None,
    session: str | None = None,
    revenue: float = 0.0,
) -> Fact:
    return Fact(uid(n), event_type, at_ms, user, session, revenue)


def aggregate(
    facts: list[Fact],
    *,
    received_at_ms: int = M_MS,
    rejected: dict[str, int] | None = None,
    duplicates: int = 0,
) -> BatchAggregate:
    return aggregate_batch(
        facts, received_at_ms=received_at_ms, now_ms=M_MS + 60_000, rejected=rejected or {}, duplicates=duplicates
    )


def by_minute(rows: InsightsRows) -> dict[int, MinuteRow]:
    return {row.minute: row for row in rows.minutes}


def user_estimate(row: MinuteRow) -> float:
    assert row.users is not None
    return float(datasketches.hll_sketch.deserialize(row.users).get_estimate())


def lag_count(row: MinuteRow) -> int:
    return sum(row.lag_ms.values())


def test_apply_is_once_per_batch_id(insights: InsightsStore) -> None:
    # GIVEN one batch's aggregate
    agg = aggregate(
        [fact(1, user="u1", session="s1"), fact(2, "purchase", user="u1", session="s1", revenue=10.0)],
        rejected={"schema_violation": 2},
        duplicates=1,
    )
    # WHEN it is applied twice (a retried step), and again with a fresh aggregate of the same batch
    assert insights.apply("b1", agg) is True
    assert insights.apply("b1", agg) is False
    assert insights.apply("b1", aggregate([fact(3)])) is False
    # THEN it counts once
    rows = insights.read(M, M + 60)
    row = by_minute(rows)[M]
    assert row.events == {"page_view": 1, "purchase": 1}
    assert row.revenue == 10.0
    assert row.rejected == {"schema_violation": 2}
    assert row.duplicates == 1
    assert lag_count(row) == 2
    assert rows.funnel == [1, 0, 0]


def test_counts_add_across_batches(insights: InsightsStore) -> None:
    # GIVEN two batches with events in the same minute, and refusals
    insights.apply(
        "b1",
        aggregate([fact(1), fact(2, "purchase", revenue=10.25)], rejected={"schema_violation": 2}, duplicates=1),
    )
    insights.apply(
        "b2",
        aggregate(
            [fact(3), fact(4, "purchase", revenue=5.5), fact(5, "signup")],
            rejected={"schema_violation": 1, "malformed_json": 4},
            duplicates=2,
        ),
    )
    # THEN the minute holds the sums
    row = by_minute(insights.read(M, M + 60))[M]
    assert row.events == {"page_view": 2, "purchase": 2, "signup": 1}
    assert row.revenue == pytest.approx(15.75)
    assert row.rejected == {"schema_violation": 3, "malformed_json": 4}
    assert row.duplicates == 3
    assert lag_count(row) == 5


def test_refusals_count_at_the_batch_minute_and_events_at_their_own(insights: InsightsStore) -> None:
    # GIVEN a batch received at M+120 s with an event of minute M and one rejection
    insights.apply(
        "b1", aggregate([fact(1, at_ms=M_MS + 1_000)], received_at_ms=M_MS + 125_000, rejected={"too_large": 1})
    )
    # THEN the event is in minute M, the rejection in minute M+120
    rows = by_minute(insights.read(M - 600, M + 600))
    assert sorted(rows) == [M, M + 120]
    assert (rows[M].events, rows[M].rejected) == ({"page_view": 1}, {})
    assert (rows[M + 120].events, rows[M + 120].rejected) == ({}, {"too_large": 1})
    assert rows[M + 120].users is None


def test_user_sketches_merge_across_batches_for_the_same_minute(insights: InsightsStore) -> None:
    # GIVEN users 0..999 in batch b1 and users 500..1499 in batch b2, same minute
    insights.apply("b1", aggregate([fact(n, user=f"u-{n}") for n in range(1000)]))
    insights.apply("b2", aggregate([fact(10_000 + n, user=f"u-{n}") for n in range(500, 1500)]))
    # WHEN the minute is read
    row = by_minute(insights.read(M, M + 60))[M]
    # THEN the users are the union (1,500), not the sum (2,000), and lag holds every event
    assert user_estimate(row) == pytest.approx(1500, rel=0.02)
    assert lag_count(row) == 2000
    assert row.events == {"page_view": 2000}


def test_sketches_of_different_minutes_stay_apart(insights: InsightsStore) -> None:
    insights.apply("b1", aggregate([fact(n, user=f"u-{n}") for n in range(100)]))
    insights.apply("b2", aggregate([fact(1000 + n, at_ms=M_MS + 60_000, user=f"v-{n}") for n in range(40)]))
    rows = by_minute(insights.read(M, M + 120))
    assert user_estimate(rows[M]) == pytest.approx(100, abs=1)
    assert user_estimate(rows[M + 60]) == pytest.approx(40, abs=1)


def test_funnel_counts_a_step_only_when_the_earlier_steps_of_the_session_exist(
    insights: InsightsStore,
) -> None:
    # GIVEN s1 that goes all the way, s2 that skips the page view, s3 that only views, s4 that views and buys
    facts = [
        fact(1, "page_view", session="s1"),
        fact(2, "add_to_cart", session="s1"),
        fact(3, "purchase", session="s1"),
        fact(4, "add_to_cart", session="s2"),
        fact(5, "purchase", session="s2"),
        fact(6, "page_view", session="s3"),
        fact(7, "page_view", session="s4"),
        fact(8, "purchase", session="s4"),
        fact(9, "signup", session="s1"),
        fact(10, "add_to_cart"),  # no session: not in the funnel
    ]
    insights.apply("b1", aggregate(facts))
    # THEN page_view: s1, s3, s4; add_to_cart: s1; purchase: s1 (s4 skipped the cart)
    assert insights.read(M, M + 60).funnel == [3, 1, 1]
    # WHEN s2's page view arrives, dated a minute later
    insights.apply("b2", aggregate([fact(11, "page_view", session="s2", at_ms=M_MS + 60_000)]))
    # THEN a window that holds it counts s2's cart and purchase; one that ends before it does not
    assert insights.read(M, M + 60).funnel == [3, 1, 1]
    assert insights.read(M + 60, M + 120).funnel == [1, 0, 0]
    assert insights.read(M, M + 120).funnel == [4, 2, 2]


def test_earlier_steps_count_up_to_the_lookback_before_the_window(insights: InsightsStore) -> None:
    # GIVEN a session that viewed 90 minutes before it bought, and one that viewed 3 hours before
    insights.apply("b1", aggregate([fact(1, "page_view", session="near", at_ms=M_MS - 90 * 60_000)]))
    insights.apply("b2", aggregate([fact(2, "page_view", session="far", at_ms=M_MS - 180 * 60_000)]))
    insights.apply(
        "b3",
        aggregate(
            [
                fact(n, step, session=s)
                for n, (s, step) in enumerate(
                    [("near", "add_to_cart"), ("near", "purchase"), ("far", "add_to_cart"), ("far", "purchase")],
                    start=3,
                )
            ]
        ),
    )
    # THEN only the session whose earlier step lies within the two-hour lookback counts
    assert SESSION_LOOKBACK_S == 7200
    assert insights.read(M, M + 60).funnel == [0, 1, 1]


def test_funnel_counts_each_session_once_per_step(insights: InsightsStore) -> None:
    insights.apply("b1", aggregate([fact(n, session="s1", at_ms=M_MS + n * 1000) for n in range(5)]))
    insights.apply("b2", aggregate([fact(10 + n, session="s1") for n in range(5)]))
    assert insights.read(M, M + 60).funnel == [1, 0, 0]


@pytest.mark.parametrize("later_first", [True, False])
def test_a_session_counts_once_in_every_window_where_it_reached_a_step(
    insights: InsightsStore, later_first: bool
) -> None:
    # GIVEN the same session's page view in minute M+60 and in minute M, in either order of arrival
    early = aggregate([fact(1, session="s1", at_ms=M_MS)])
    late = aggregate([fact(2, session="s1", at_ms=M_MS + 60_000)])
    for batch_id, agg in [("late", late), ("early", early)] if later_first else [("early", early), ("late", late)]:
        insights.apply(batch_id, agg)
    # THEN each minute's window counts it, and a window over both counts it once
    assert insights.read(M, M + 60).funnel == [1, 0, 0]
    assert insights.read(M + 60, M + 120).funnel == [1, 0, 0]
    assert insights.read(M, M + 120).funnel == [1, 0, 0]


def test_read_window_is_since_inclusive_until_exclusive(insights: InsightsStore) -> None:
    # GIVEN one event (with a session) in each of the minutes M-60, M, M+60
    for n, minute in enumerate([M - 60, M, M + 60]):
        agg = aggregate([fact(n, session=f"s{n}", at_ms=minute * 1000 + 59_999)], received_at_ms=minute * 1000)
        insights.apply(f"b{n}", agg)
    # THEN [M, M+60) holds minute M only, for counts, sketches and the funnel
    rows = insights.read(M, M + 60)
    assert [row.minute for row in rows.minutes] == [M]
    assert rows.funnel == [1, 0, 0]
    assert sorted(by_minute(insights.read(M, M + 120))) == [M, M + 60]
    assert sorted(by_minute(insights.read(M - 60, M))) == [M - 60]
    empty = insights.read(M + 120, M + 600)
    assert (empty.minutes, empty.funnel) == ([], [0, 0, 0])
    assert insights.read(M, M).minutes == []


def test_a_dirty_hour_is_cleared_only_at_the_version_the_export_read(insights: InsightsStore) -> None:
    # GIVEN an hour changed by one batch, read by the export, then changed again
    insights.apply("b1", aggregate([fact(1)]))
    [(hour, version)] = insights.dirty_hours()
    insights.apply("b2", aggregate([fact(2, at_ms=M_MS + 60_000)]))
    # THEN clearing it at the version read fails, and it stays dirty at the newer version
    assert hour == M - M % 3600
    assert insights.clear_dirty(hour, version) is False
    assert insights.dirty_hours() == [(hour, version + 1)]
    # AND clearing at the current version forgets it; a later apply marks it again
    assert insights.clear_dirty(hour, version + 1) is True
    assert insights.dirty_hours() == []
    assert insights.clear_dirty(hour, version + 1) is False
    insights.apply("b3", aggregate([fact(3)]))
    assert [h for h, _ in insights.dirty_hours()] == [hour]


def test_a_batch_over_two_hours_marks_both_and_a_repeat_marks_nothing(insights: InsightsStore) -> None:
    agg = aggregate([fact(1), fact(2, at_ms=M_MS + 3_600_000)])
    assert insights.apply("b1", agg) is True
    before = insights.dirty_hours()
    assert [hour for hour, _ in before] == [M - M % 3600, M - M % 3600 + 3600]
    assert insights.apply("b1", agg) is False
    assert insights.dirty_hours() == before


def test_each_app_and_its_bots_are_a_segment_and_the_funnel_counts_what_the_view_counts(
    insights: InsightsStore,
) -> None:
    # GIVEN one minute of events of no app, of app "shop", of an app id with characters ids may not
    # hold, and of a crawler on "shop"; each a session that reached the first step
    facts = [
        Fact(uid(1), "page_view", M_MS, "u-1", "s-1", 0.0),
        Fact(uid(2), "page_view", M_MS, "u-2", "s-2", 0.0, app_id="shop"),
        Fact(uid(3), "page_view", M_MS, "u-3", "s-3", 0.0, app_id="shop/eu#1?%"),
        Fact(uid(4), "page_view", M_MS, "u-4", "s-4", 0.0, app_id="shop", bot=True),
    ]
    insights.apply("b-1", aggregate(facts))
    # WHEN read in full, THEN each segment is a row of its own with its one event
    rows = insights.read(M, M + 60)
    segments = {row.segment: sum(row.events.values()) for row in rows.minutes}
    assert segments == {"": 1, "h:shop": 1, "h:shop/eu#1?%": 1, "b:shop": 1}
    # AND the funnel counts the sessions of the segments the view counts
    assert insights.read(M, M + 60).funnel[0] == 3  # people of every app
    assert insights.read(M, M + 60, view=InsightsView(app_id="shop")).funnel[0] == 1
    assert insights.read(M, M + 60, view=InsightsView(app_id="shop", include_bots=True)).funnel[0] == 2

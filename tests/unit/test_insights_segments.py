"""Insights by app, without bots and by country (core/segments.py), the same on SQLite and DynamoDB."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore
from eventpipe.adapters.local import Database, SqliteInsightsStore
from eventpipe.core.aggregate import aggregate_batch, changed_hours
from eventpipe.core.facts import Fact, fact_of
from eventpipe.core.insights import build_insights, people_by_minute
from eventpipe.core.segments import ALL_PEOPLE, InsightsView, parse_segment, segment_of, view_of
from tests.aws.conftest import INSIGHTS_TABLE
from tests.aws.insights_stream import StreamedStore

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from eventpipe.core.ports import InsightsStore

D = 1_795_824_000  # 2026-11-28T00:00:00Z
D_MS = D * 1000


def fact(
    event_type: str = "page_view",
    *,
    app: str | None = None,
    bot: bool = False,
    country: str | None = None,
    user: str = "u-1",
    session: str = "s-1",
    revenue: float = 0.0,
    at_ms: int = D_MS + 30_000,
) -> Fact:
    return Fact(str(uuid.uuid4()), event_type, at_ms, user, session, revenue, app, bot, country)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InsightsStore]:
    if request.param == "sqlite":
        database = Database(tmp_path / "insights.db")
        yield SqliteInsightsStore(database)
        database.close()
    else:
        client = request.getfixturevalue("dynamodb")
        # its deltas folded right after each apply, as the table's stream hands them to fold_insights
        yield StreamedStore(DynamoInsightsStore(INSIGHTS_TABLE, client), client)  # type: ignore[misc]


def document(store: InsightsStore, view: InsightsView = ALL_PEOPLE) -> dict[str, Any]:
    rows = store.read(D, D + 3600, view=view)
    return build_insights(rows, since_ms=D_MS, until_ms=D_MS + 3_600_000, currency="EUR", view=view)


def apply(store: InsightsStore, batch_id: str, facts: list[Fact], **refusals: Any) -> None:
    aggregate = aggregate_batch(
        facts,
        received_at_ms=D_MS + 60_000,
        now_ms=D_MS + 61_000,
        rejected=refusals.get("rejected", {}),
        duplicates=refusals.get("duplicates", 0),
    )
    assert store.apply(batch_id, aggregate)


@pytest.fixture
def filled(store: InsightsStore) -> InsightsStore:
    # GIVEN people and bots of two apps, and events of no app, some located, with a funnel in each
    apply(
        store,
        "b-shop",
        [
            fact(app="app_shop", user="u-1", session="s-1", country="DE"),
            fact("add_to_cart", app="app_shop", user="u-1", session="s-1", country="DE"),
            fact("purchase", app="app_shop", user="u-1", session="s-1", revenue=10.0, country="DE"),
            fact(app="app_shop", user="u-2", session="s-2", country="FR"),
            fact(app="app_shop", bot=True, user="crawler", session="s-bot", country="US"),
            fact("add_to_cart", app="app_shop", bot=True, user="crawler", session="s-bot"),
        ],
        rejected={"schema_violation": 2},
        duplicates=1,
    )
    apply(
        store,
        "b-blog",
        [
            fact(app="app_blog", user="u-9", session="s-9", country="DE"),
            fact(app="app_blog", bot=True, user="spider", session="s-sp"),
        ],
    )
    apply(store, "b-none", [fact(user="u-5", session="s-5", at_ms=D_MS + 90_000)])
    return store


def test_by_default_every_app_without_bots(filled: InsightsStore) -> None:
    totals = document(filled)["totals"]
    assert totals["events"] == 6
    assert totals["by_type"] == {"add_to_cart": 1, "page_view": 4, "purchase": 1}
    assert totals["unique_users"] == 4  # u-1, u-2, u-9, u-5: the crawlers are not users
    assert totals["bots"] == 3
    assert totals["by_country"] == {"DE": 4, "FR": 1}
    assert totals["revenue"] == 10.0
    assert (totals["rejected"], totals["duplicates"]) == ({"schema_violation": 2}, 1)
    assert document(filled)["funnel"] == {"page_view": 4, "add_to_cart": 1, "purchase": 1}


def test_include_bots_counts_them_in(filled: InsightsStore) -> None:
    doc = document(filled, InsightsView(include_bots=True))
    totals = doc["totals"]
    assert (totals["events"], totals["bots"], totals["unique_users"]) == (9, 3, 6)
    assert totals["by_country"] == {"DE": 4, "FR": 1, "US": 1}
    # the crawler's session reached page_view and add_to_cart: the funnel counts it now
    assert doc["funnel"] == {"page_view": 6, "add_to_cart": 2, "purchase": 1}


def test_one_app(filled: InsightsStore) -> None:
    doc = document(filled, InsightsView(app_id="app_shop"))
    totals = doc["totals"]
    assert (totals["events"], totals["bots"], totals["unique_users"]) == (4, 2, 2)
    assert totals["by_type"] == {"add_to_cart": 1, "page_view": 2, "purchase": 1}
    assert totals["by_country"] == {"DE": 3, "FR": 1}
    assert doc["funnel"] == {"page_view": 2, "add_to_cart": 1, "purchase": 1}
    assert [m["events"] for m in doc["minutes"]] == [{"add_to_cart": 1, "page_view": 2, "purchase": 1}, {}]
    blog = document(filled, InsightsView(app_id="app_blog", include_bots=True))["totals"]
    assert (blog["events"], blog["bots"]) == (2, 1)
    unknown = document(filled, InsightsView(app_id="app_unknown"))["totals"]
    assert (unknown["events"], unknown["bots"], unknown["unique_users"]) == (0, 0, 0)


def test_applying_again_changes_nothing(filled: InsightsStore) -> None:
    before = document(filled, InsightsView(include_bots=True))
    aggregate = aggregate_batch(
        [fact(app="app_shop")], received_at_ms=D_MS + 60_000, now_ms=D_MS, rejected={}, duplicates=0
    )
    assert not filled.apply("b-shop", aggregate)
    assert document(filled, InsightsView(include_bots=True)) == before


def test_the_export_rows_are_people_by_minute(filled: InsightsStore) -> None:
    minutes = people_by_minute(filled.read(D, D + 3600, funnel=False))
    assert [sum(m.events.values()) for m in minutes] == [5, 1]  # minute 0: shop and blog people; minute 1: u-5
    assert minutes[1].rejected == {"schema_violation": 2}  # refusals at the batch's minute


def test_many_minutes_and_segments_in_one_hour(store: InsightsStore) -> None:
    # GIVEN one batch with 60 minutes x 3 segments (180 minute items of one hour: one DynamoDB delta)
    facts = [
        fact(app=app, bot=bot, at_ms=D_MS + minute * 60_000)
        for minute in range(60)
        for app, bot in ((None, False), ("app_a", False), ("app_a", True))
    ]
    apply(store, "b-wide", facts)
    # THEN every event is counted once, and a retry changes nothing
    assert not store.apply(
        "b-wide", aggregate_batch(facts, received_at_ms=D_MS, now_ms=D_MS, rejected={}, duplicates=0)
    )
    totals = document(store, InsightsView(include_bots=True))["totals"]
    assert (totals["events"], totals["bots"]) == (180, 60)


def test_segments_and_views() -> None:
    assert segment_of(None, False) == ""
    for app, bot in (("app_1", False), ("app_1", True), (None, True), ("a#b:c", True)):
        assert parse_segment(segment_of(app, bot)) == (app, bot)
    view = InsightsView(app_id="app_1")
    assert view.covers("b:app_1") and not view.counts("b:app_1")  # noqa: PT018
    assert not view.covers("h:app_2")
    assert not view.covers("")
    assert view_of(None, "true") == InsightsView(include_bots=True)
    assert view_of("app_1", None) == InsightsView(app_id="app_1")
    for app_id, flag in (("", None), ("x" * 65, None), (None, "maybe")):
        with pytest.raises(ValueError, match=r"app_id|include_bots"):
            view_of(app_id, flag)


def test_facts_carry_app_bot_and_country() -> None:
    event = {
        "event_id": "e",
        "event_type": "page_view",
        "occurred_at": "2026-11-28T00:00:00Z",
        "app_id": "app_1",
        "enrichment": {"event_time_ms": D_MS, "bot": True, "geo": {"country": "DE", "city": "Berlin"}},
    }
    assert fact_of(event)[-3:] == ("app_1", True, "DE")
    assert fact_of({**event, "app_id": 7, "enrichment": {"event_time_ms": D_MS}})[-3:] == (None, False, None)


def test_changed_hours_include_segments() -> None:
    aggregate = aggregate_batch(
        [fact(app="app_1", at_ms=D_MS + 7_200_000)], received_at_ms=D_MS, now_ms=D_MS, rejected={}, duplicates=0
    )
    assert changed_hours(aggregate) == [D + 7200]

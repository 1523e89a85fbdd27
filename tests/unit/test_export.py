"""The insights export: dirty hours, additive and non-additive tables apart, unique users united per hour and day."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.adapters.local import Database, FolderBucket, SqliteInsightsStore
from eventpipe.core.aggregate import aggregate_batch
from eventpipe.core.export import export_dirty, export_window
from eventpipe.core.facts import Fact

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from eventpipe.core.aggregate import BatchAggregate

D = 1_795_824_000  # 2026-11-28T00:00:00Z in epoch seconds
D_MS = D * 1000
COUNTS_2300 = "minute_counts/dt=2026-11-27/hour=23/part.json"
COUNTS_0000 = "minute_counts/dt=2026-11-28/hour=00/part.json"
UNIQUES_2300 = "hour_uniques/dt=2026-11-27/hour=23/part.json"
UNIQUES_0000 = "hour_uniques/dt=2026-11-28/hour=00/part.json"
DAY_27 = "day_uniques/dt=2026-11-27/part.json"
DAY_28 = "day_uniques/dt=2026-11-28/part.json"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteInsightsStore]:
    db = Database(tmp_path / "eventpipe.sqlite")
    yield SqliteInsightsStore(db)
    db.close()


@pytest.fixture
def bucket(tmp_path: Path) -> FolderBucket:
    return FolderBucket(tmp_path / "analytics", prefixes=())


def fact(
    n: int, event_type: str, at_ms: int, user: str | None = None, revenue: float = 0.0, session: str | None = None
) -> Fact:
    return Fact(f"e-{n}", event_type, at_ms, user, session, revenue)


def aggregate(facts: list[Fact], received_at_ms: int, **refusals: Any) -> BatchAggregate:
    return aggregate_batch(
        facts,
        received_at_ms=received_at_ms,
        now_ms=received_at_ms,
        rejected=refusals.get("rejected", {}),
        duplicates=refusals.get("duplicates", 0),
    )


def lines(bucket: FolderBucket, key: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in bucket.get(key).splitlines()]


def export(store: SqliteInsightsStore, bucket: FolderBucket, since: int, until: int) -> list[str]:
    return export_window(store, bucket, since_minute=since, until_minute=until).keys


@pytest.fixture
def applied(store: SqliteInsightsStore) -> SqliteInsightsStore:
    """Events at 23:59 (the day before), 00:00 and 00:30; refusals received at 00:31; nothing at 01:xx."""
    store.apply(
        "b1",
        aggregate(
            [
                fact(1, "page_view", D_MS - 60_000 + 5, user="u1", session="s1"),
                fact(2, "page_view", D_MS + 1, user="u1", session="s1"),
                fact(3, "page_view", D_MS + 2, user="u2", session="s2"),
                fact(4, "purchase", D_MS + 3, user="u2", revenue=10.004, session="s2"),
                fact(5, "signup", D_MS + 30 * 60_000),
            ],
            received_at_ms=D_MS + 31 * 60_000,
            rejected={"schema_violation": 2, "malformed_json": 1},
            duplicates=3,
        ),
    )
    return store


def test_every_dirty_hour_is_exported_to_three_tables_then_forgotten(
    applied: SqliteInsightsStore, bucket: FolderBucket
) -> None:
    # GIVEN a batch that changed the hours 23:00 (the day before) and 00:00
    assert [hour for hour, _ in applied.dirty_hours()] == [D - 3600, D]
    # WHEN the export runs
    result = export_dirty(applied, bucket)
    # THEN each hour has its minute counts and its uniques, and each day its uniques; the hours are clean
    assert (result.hours, result.pending) == (2, 0)
    assert result.keys == [COUNTS_2300, UNIQUES_2300, COUNTS_0000, UNIQUES_0000, DAY_27, DAY_28]
    assert applied.dirty_hours() == []
    # AND the minute counts hold the additive columns only, one line per minute, oldest first
    assert lines(bucket, COUNTS_0000) == [
        {
            "minute": "2026-11-28T00:00:00Z",
            "events": {"page_view": 2, "purchase": 1},
            "events_total": 3,
            "revenue": 10.0,
            "rejected": {},
            "duplicates": 0,
        },
        {
            "minute": "2026-11-28T00:30:00Z",
            "events": {"signup": 1},
            "events_total": 1,
            "revenue": 0.0,
            "rejected": {},
            "duplicates": 0,
        },
        {
            "minute": "2026-11-28T00:31:00Z",
            "events": {},
            "events_total": 0,
            "revenue": 0.0,
            "rejected": {"malformed_json": 1, "schema_violation": 2},
            "duplicates": 3,
        },
    ]
    # AND the uniques: the hour's users and funnel (s1 viewed at 23:59, in 00:00's lookback), the days' users
    assert lines(bucket, UNIQUES_0000) == [
        {
            "hour": "2026-11-28T00:00:00Z",
            "unique_users": 2,
            "funnel_page_view": 2,
            "funnel_add_to_cart": 0,
            "funnel_purchase": 0,
        }
    ]
    assert lines(bucket, UNIQUES_2300)[0]["unique_users"] == 1
    assert lines(bucket, DAY_27) == [{"day": "2026-11-27", "unique_users": 1}]
    assert lines(bucket, DAY_28) == [{"day": "2026-11-28", "unique_users": 2}]
    # AND a second run has nothing to do
    assert export_dirty(applied, bucket).keys == []


def test_a_late_batch_is_exported_whatever_its_age_and_users_are_united_not_summed(
    applied: SqliteInsightsStore, bucket: FolderBucket
) -> None:
    export_dirty(applied, bucket)
    # GIVEN a late batch, a day later, with u1 again at 00:45 and a new user u3 at 05:00
    late = aggregate(
        [fact(7, "page_view", D_MS + 45 * 60_000, user="u1"), fact(8, "page_view", D_MS + 5 * 3_600_000, user="u3")],
        received_at_ms=D_MS + 86_400_000,
    )
    applied.apply("late", late)
    # WHEN the export runs
    keys = export_dirty(applied, bucket).keys
    # THEN only the changed hours are written again (and the hour of the batch's receipt had no refusal)
    assert keys == [
        COUNTS_0000,
        UNIQUES_0000,
        "minute_counts/dt=2026-11-28/hour=05/part.json",
        "hour_uniques/dt=2026-11-28/hour=05/part.json",
        DAY_28,
    ]
    assert lines(bucket, COUNTS_0000)[-1] | {"events": {"page_view": 1}} == lines(bucket, COUNTS_0000)[-1]
    assert lines(bucket, COUNTS_0000)[-1]["minute"] == "2026-11-28T00:45:00Z"
    # AND u1, seen in two minutes of 00:00, counts once in the hour; the day unites its hours: u1, u2, u3
    assert lines(bucket, UNIQUES_0000)[0]["unique_users"] == 2
    assert lines(bucket, DAY_28) == [{"day": "2026-11-28", "unique_users": 3}]


class ChangedDuringExport:
    """The SQLite store, but a batch lands in 00:00 while the export reads that hour (the first time)."""

    def __init__(self, store: SqliteInsightsStore) -> None:
        self.store = store
        self.landed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def read(self, since_minute: int, until_minute: int, *, funnel: bool = True) -> Any:
        rows = self.store.read(since_minute, until_minute, funnel=funnel)
        if since_minute == D and not self.landed:
            self.landed = True
            self.store.apply("racing", aggregate([fact(9, "add_to_cart", D_MS + 2, user="u9")], received_at_ms=D_MS))
        return rows


def test_an_hour_changed_while_it_is_exported_stays_dirty_for_the_next_run(
    applied: SqliteInsightsStore, bucket: FolderBucket
) -> None:
    # GIVEN a batch that lands in 00:00 after the export read it
    racing = ChangedDuringExport(applied)
    # WHEN the export runs
    result = export_dirty(racing, bucket)
    # THEN 23:00 is forgotten, 00:00 is not: the export missed the racing batch
    assert result.pending == 1
    assert [hour for hour, _ in applied.dirty_hours()] == [D]
    assert "add_to_cart" not in lines(bucket, COUNTS_0000)[0]["events"]
    # AND the next run exports it with the racing batch, and forgets it
    assert export_dirty(applied, bucket).keys == [COUNTS_0000, UNIQUES_0000, DAY_28]
    assert lines(bucket, COUNTS_0000)[0]["events"] == {"add_to_cart": 1, "page_view": 2, "purchase": 1}
    assert applied.dirty_hours() == []


def test_a_backlog_is_worked_off_a_bounded_number_of_hours_a_run(
    store: SqliteInsightsStore, bucket: FolderBucket
) -> None:
    # GIVEN five dirty hours
    for hour in range(5):
        at_ms = D_MS + hour * 3_600_000
        store.apply(f"b{hour}", aggregate([fact(hour, "page_view", at_ms)], received_at_ms=at_ms))
    # WHEN the export runs with room for two hours a run
    first = export_dirty(store, bucket, max_hours=2)
    # THEN the two oldest are exported, three wait; the following runs take the rest
    assert (first.hours, first.pending) == (2, 3)
    assert [hour for hour, _ in store.dirty_hours()] == [D + 2 * 3600, D + 3 * 3600, D + 4 * 3600]
    assert export_dirty(store, bucket, max_hours=2).pending == 1
    assert export_dirty(store, bucket, max_hours=2).pending == 0


def test_a_window_is_exported_by_whole_hours_and_again_harmlessly(
    applied: SqliteInsightsStore, bucket: FolderBucket
) -> None:
    # WHEN a window of one minute, 00:45, is exported twice
    keys = export(applied, bucket, D + 45 * 60, D + 46 * 60)
    first = bucket.get(COUNTS_0000)
    assert export(applied, bucket, D + 45 * 60, D + 46 * 60) == keys
    # THEN the whole hour 00:00 is written, the same bytes each time, and its day
    assert keys == [COUNTS_0000, UNIQUES_0000, DAY_28]
    assert bucket.get(COUNTS_0000) == first
    assert len(lines(bucket, COUNTS_0000)) == 3
    # AND a window without rows writes nothing
    assert export(applied, bucket, D + 3600, D + 3 * 3600) == []
    assert export(applied, bucket, D, D) == []

"""export_insights: whole UTC hours of per-minute insights as JSON lines under Hive-style partitions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.adapters.local import Database, FolderBucket, SqliteInsightsStore
from eventpipe.core.aggregate import aggregate_batch
from eventpipe.core.export import export_insights
from eventpipe.core.facts import Fact

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from eventpipe.core.aggregate import BatchAggregate

D = 1_795_824_000  # 2026-11-28T00:00:00Z in epoch seconds
D_MS = D * 1000
KEY_2300 = "insights/dt=2026-11-27/hour=23/minutes.json"
KEY_0000 = "insights/dt=2026-11-28/hour=00/minutes.json"
KEY_0100 = "insights/dt=2026-11-28/hour=01/minutes.json"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteInsightsStore]:
    db = Database(tmp_path / "eventpipe.sqlite")
    yield SqliteInsightsStore(db)
    db.close()


@pytest.fixture
def bucket(tmp_path: Path) -> FolderBucket:
    return FolderBucket(tmp_path / "bucket")


def fact(n: int, event_type: str, at_ms: int, user: str | None = None, revenue: float = 0.0) -> Fact:
    return Fact(f"e-{n}", event_type, at_ms, user, None, revenue)


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
    return export_insights(store, bucket, since_minute=since, until_minute=until)


@pytest.fixture
def applied(store: SqliteInsightsStore) -> SqliteInsightsStore:
    """Events at 23:59 (the day before), 00:00 and 00:30; refusals received at 00:31; nothing at 01:xx."""
    store.apply(
        "b1",
        aggregate(
            [
                fact(1, "page_view", D_MS - 60_000 + 5, user="u1"),
                fact(2, "page_view", D_MS + 1, user="u1"),
                fact(3, "page_view", D_MS + 2, user="u2"),
                fact(4, "purchase", D_MS + 3, user="u2", revenue=10.004),
                fact(5, "signup", D_MS + 30 * 60_000),
            ],
            received_at_ms=D_MS + 31 * 60_000,
            rejected={"schema_violation": 2, "malformed_json": 1},
            duplicates=3,
        ),
    )
    return store


def test_each_hour_with_rows_is_one_object_of_json_lines(applied: SqliteInsightsStore, bucket: FolderBucket) -> None:
    # WHEN a window from 23:30 to 01:30 is exported
    keys = export(applied, bucket, D - 1800, D + 5400)
    # THEN the hours 23:00 and 00:00 are written (01:00 has no rows), in Hive-style partitions
    assert keys == [KEY_2300, KEY_0000]
    assert list(bucket.keys("insights/")) == [KEY_2300, KEY_0000]
    # AND each holds one line per minute, oldest first, with the documented fields
    assert lines(bucket, KEY_2300) == [
        {
            "minute": "2026-11-27T23:59:00Z",
            "events": {"page_view": 1},
            "events_total": 1,
            "unique_users": 1,
            "revenue": 0.0,
            "rejected": {},
            "duplicates": 0,
        }
    ]
    assert lines(bucket, KEY_0000) == [
        {
            "minute": "2026-11-28T00:00:00Z",
            "events": {"page_view": 2, "purchase": 1},
            "events_total": 3,
            "unique_users": 2,
            "revenue": 10.0,
            "rejected": {},
            "duplicates": 0,
        },
        {
            "minute": "2026-11-28T00:30:00Z",
            "events": {"signup": 1},
            "events_total": 1,
            "unique_users": 0,
            "revenue": 0.0,
            "rejected": {},
            "duplicates": 0,
        },
        {
            "minute": "2026-11-28T00:31:00Z",
            "events": {},
            "events_total": 0,
            "unique_users": 0,
            "revenue": 0.0,
            "rejected": {"malformed_json": 1, "schema_violation": 2},
            "duplicates": 3,
        },
    ]


def test_the_window_is_widened_to_whole_hours(applied: SqliteInsightsStore, bucket: FolderBucket) -> None:
    # GIVEN a window of one minute, 00:45, after every row of its hour
    keys = export(applied, bucket, D + 45 * 60, D + 46 * 60)
    # THEN the whole hour 00:00 is written, so the object is complete
    assert keys == [KEY_0000]
    assert [line["minute"] for line in lines(bucket, KEY_0000)] == [
        "2026-11-28T00:00:00Z",
        "2026-11-28T00:30:00Z",
        "2026-11-28T00:31:00Z",
    ]


def test_exporting_again_overwrites_the_objects(applied: SqliteInsightsStore, bucket: FolderBucket) -> None:
    # GIVEN an exported hour
    export(applied, bucket, D, D + 3600)
    first = bucket.get(KEY_0000)
    # WHEN the same window is exported again
    assert export(applied, bucket, D, D + 3600) == [KEY_0000]
    # THEN the object is the same bytes, and no other object appeared
    assert bucket.get(KEY_0000) == first
    assert list(bucket.keys("insights/")) == [KEY_0000]
    # WHEN a late batch adds to the hour and it is exported again
    applied.apply("b2", aggregate([fact(9, "page_view", D_MS + 5, user="u3")], received_at_ms=D_MS + 60_000))
    export(applied, bucket, D, D + 3600)
    # THEN the object holds the new counts once, not a second copy of the old lines
    rows = lines(bucket, KEY_0000)
    assert len(rows) == 3
    assert rows[0]["events"] == {"page_view": 3, "purchase": 1}
    assert rows[0]["unique_users"] == 3


def test_a_window_without_rows_writes_nothing(applied: SqliteInsightsStore, bucket: FolderBucket) -> None:
    # GIVEN an empty window, and a window of hours without rows
    assert export(applied, bucket, D, D) == []
    assert export(applied, bucket, D + 3600, D + 3 * 3600) == []
    # THEN no object was written
    assert list(bucket.keys("insights/")) == []


def test_a_long_window_is_exported_across_days(store: SqliteInsightsStore, bucket: FolderBucket) -> None:
    # GIVEN one event a day for three days
    for day in range(3):
        at_ms = D_MS + day * 86_400_000 + 7_200_000
        store.apply(f"b{day}", aggregate([fact(day, "page_view", at_ms)], received_at_ms=at_ms))
    # WHEN three days are exported at once
    keys = export(store, bucket, D, D + 3 * 86_400)
    # THEN each day's hour 02 is written
    assert keys == [f"insights/dt=2026-11-{day}/hour=02/minutes.json" for day in (28, 29, 30)]

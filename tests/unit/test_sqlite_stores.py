"""The SQLite stores of the local runtime: curated events, quarantine, batches, insights, and the database."""

from __future__ import annotations

import sqlite3
import uuid
from typing import TYPE_CHECKING

import datasketches
import pytest

from eventpipe.adapters.local import (
    Database,
    FolderBucket,
    SqliteBatchStore,
    SqliteCuratedStore,
    SqliteInsightsStore,
    SqliteQuarantine,
)
from eventpipe.core.aggregate import aggregate_batch
from eventpipe.core.errors import StorageError
from eventpipe.core.facts import Fact
from eventpipe.core.funnel import SESSION_LOOKBACK_S
from eventpipe.core.model import BatchRecord, Reason, Rejection

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from eventpipe.core.aggregate import BatchAggregate
    from eventpipe.core.insight_rows import InsightsRows, MinuteRow

M = 1_795_845_600  # 2026-11-28T06:00:00Z in epoch seconds: a minute start
M_MS = M * 1000


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "db" / "eventpipe.sqlite")
    yield database
    database.close()


def uid(n: int) -> str:
    return str(uuid.UUID(int=n))


# --- Database -------------------------------------------------------------------------------------


def write(db: Database, statements: list[str], then_raise: Exception | None = None) -> None:
    with db.transaction() as conn:
        for statement in statements:
            conn.execute(statement)
        if then_raise is not None:
            raise then_raise


def test_a_sqlite_error_in_a_transaction_is_a_storage_error_and_rolls_back(db: Database) -> None:
    # GIVEN a transaction that inserts one good row, then breaks a NOT NULL constraint
    statements = [
        "INSERT INTO applied_batches VALUES ('kept-only-if-committed')",
        "INSERT INTO applied_batches VALUES (NULL)",
    ]
    # WHEN it runs
    with pytest.raises(StorageError, match="database error") as info:
        write(db, statements)
    # THEN the sqlite3 error is wrapped, the first insert is gone, and the next transaction works
    assert isinstance(info.value.__cause__, sqlite3.Error)
    with db.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM applied_batches").fetchone()[0] == 0
    with db.transaction() as conn:
        conn.execute("INSERT INTO applied_batches VALUES ('next')")
    with db.reading() as conn:
        assert conn.execute("SELECT batch_id FROM applied_batches").fetchall() == [("next",)]


def test_another_error_in_a_transaction_propagates_unchanged_and_rolls_back(db: Database) -> None:
    # GIVEN a transaction that writes, then fails for a reason of its own
    with pytest.raises(KeyError, match="boom"):
        write(db, ["INSERT INTO applied_batches VALUES ('b')"], then_raise=KeyError("boom"))
    # THEN the write is rolled back
    with db.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM applied_batches").fetchone()[0] == 0


def applied(db: Database) -> list[str]:
    with db.reading() as conn:
        return [row[0] for row in conn.execute("SELECT batch_id FROM applied_batches ORDER BY batch_id")]


def test_a_nested_transaction_that_fails_is_undone_alone_and_the_outer_one_commits(db: Database) -> None:
    # GIVEN an outer transaction with a write, a nested one that fails, and a nested one that succeeds
    with db.transaction() as conn:
        conn.execute("INSERT INTO applied_batches VALUES ('outer')")
        with pytest.raises(StorageError):
            write(db, ["INSERT INTO applied_batches VALUES ('undone')", "INSERT INTO applied_batches VALUES (NULL)"])
        with db.transaction() as inner:
            inner.execute("INSERT INTO applied_batches VALUES ('kept')")
        # THEN nothing is visible to another connection before the outer commit
        other = sqlite3.connect(db_path(db))
        assert other.execute("SELECT COUNT(*) FROM applied_batches").fetchone()[0] == 0
        other.close()
    # AND after it, the outer write and the successful nested one are stored, the failed one is not
    assert applied(db) == ["kept", "outer"]


def test_a_failure_of_the_outer_transaction_undoes_the_nested_ones(db: Database) -> None:
    def nested_then_crash() -> None:
        with db.transaction():
            write(db, ["INSERT INTO applied_batches VALUES ('nested')"])
            raise KeyError("crash")

    with pytest.raises(KeyError):
        nested_then_crash()
    assert applied(db) == []
    with db.transaction() as conn:  # and the next transaction starts afresh
        conn.execute("INSERT INTO applied_batches VALUES ('next')")
    assert applied(db) == ["next"]


def db_path(db: Database) -> str:
    with db.reading() as conn:
        return str(conn.execute("PRAGMA database_list").fetchone()[2])


def test_a_sqlite_error_while_reading_is_a_storage_error(db: Database) -> None:
    with pytest.raises(StorageError, match="no such table"), db.reading() as conn:
        conn.execute("SELECT * FROM no_such_table")


def test_a_database_that_cannot_be_opened_is_a_storage_error(tmp_path: Path) -> None:
    # GIVEN a path that is a folder
    (tmp_path / "a-folder").mkdir()
    # THEN opening it is a StorageError naming the path
    with pytest.raises(StorageError, match="a-folder"):
        Database(tmp_path / "a-folder")


def test_the_database_is_reopened_with_its_data(tmp_path: Path) -> None:
    # GIVEN a curated event written, and the database closed
    path = tmp_path / "eventpipe.sqlite"
    first = Database(path)
    SqliteCuratedStore(first, FolderBucket(tmp_path / "curated", prefixes=())).put_new(
        "b1", [(uid(1), "page_view", b"{}")]
    )
    first.close()
    # WHEN it is opened again
    second = Database(path)
    # THEN the event is there
    assert SqliteCuratedStore(second, FolderBucket(tmp_path / "curated", prefixes=())).count() == 1
    second.close()


def test_a_failed_commit_is_rolled_back(db: Database) -> None:
    # GIVEN a constraint that SQLite checks only at COMMIT (a deferred foreign key)
    with db.reading() as conn:
        conn.execute("PRAGMA foreign_keys=ON")
    with db.transaction() as conn:
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE child (pid INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    # WHEN a transaction breaks it, so that COMMIT fails
    with pytest.raises(StorageError), db.transaction() as conn:
        conn.execute("INSERT INTO child VALUES (5)")
    # THEN the failed write is not visible and the next transaction works
    with db.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
    with db.transaction() as conn:
        conn.execute("INSERT INTO parent VALUES (1)")


# --- SqliteCuratedStore ---------------------------------------------------------------------------


@pytest.fixture
def curated(db: Database, tmp_path: Path) -> SqliteCuratedStore:
    return SqliteCuratedStore(db, FolderBucket(tmp_path / "curated", prefixes=()))


def test_count_by_type_get_and_an_empty_store(curated: SqliteCuratedStore) -> None:
    # GIVEN an empty store
    assert curated.count() == 0
    assert curated.count_by_type() == {}
    assert curated.get(uid(1)) is None
    assert curated.put_new("b0", []) == []
    # WHEN events of several types are stored
    curated.put_new("b1", [(uid(n), ("page_view", "purchase", "page_view")[n % 3], b"{}") for n in range(30)])
    # THEN they are counted by type
    assert curated.count() == 30
    assert curated.count_by_type() == {"page_view": 20, "purchase": 10}
    assert curated.get(uid(31)) is None


def test_put_new_handles_a_batch_larger_than_the_sqlite_variable_limit(db: Database, tmp_path: Path) -> None:
    # GIVEN SQLite's limit on bound variables as it is on SQLite before 3.32
    with db.reading() as conn:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    # WHEN a batch of 1,000 events is stored
    flags = SqliteCuratedStore(db, FolderBucket(tmp_path / "segments", prefixes=())).put_new(
        "b1", [(uid(n), "page_view", b"{}") for n in range(1000)]
    )
    # THEN all are new
    assert flags == [True] * 1000


# --- SqliteQuarantine -----------------------------------------------------------------------------


@pytest.fixture
def quarantine(db: Database) -> SqliteQuarantine:
    return SqliteQuarantine(db)


def rejection(batch_id: str, index: int, *, raw: str = "{}", event_id: str | None = None) -> Rejection:
    reasons = (
        Reason("schema_violation", "$.properties.path", "'path' is a required property"),
        Reason("envelope_invalid", "$.occurred_at", "not a date-time"),
    )
    return Rejection(batch_id, index, "validate", reasons, raw, event_id)


def test_add_is_idempotent_per_batch_and_index(quarantine: SqliteQuarantine) -> None:
    # GIVEN a rejection stored once
    quarantine.add([rejection("b1", 1, raw="first")])
    # WHEN the same (batch, index) is added again, alone and with a new one, and the same index of another batch
    quarantine.add([rejection("b1", 1, raw="second")])
    quarantine.add([rejection("b1", 1, raw="third"), rejection("b1", 2), rejection("b2", 1)])
    # THEN there is one record per (batch, index), and the first one is kept
    assert quarantine.count() == 3
    assert [(r.index, r.raw) for r in quarantine.for_batch("b1")] == [(1, "first"), (2, "{}")]
    assert [r.batch_id for r in quarantine.for_batch("b2")] == ["b2"]


def test_iter_all_is_oldest_first_with_a_limit(quarantine: SqliteQuarantine) -> None:
    # GIVEN rejections stored in an order unlike their batch ids and indexes
    quarantine.add([rejection("z", 5)])
    quarantine.add([rejection("a", 9), rejection("a", 1)])
    quarantine.add([rejection("m", 0)])
    # THEN they come in the order they were stored
    assert [(r.batch_id, r.index) for r in quarantine.iter_all()] == [("z", 5), ("a", 9), ("a", 1), ("m", 0)]
    assert [(r.batch_id, r.index) for r in quarantine.iter_all(limit=2)] == [("z", 5), ("a", 9)]
    assert list(quarantine.iter_all(limit=0)) == []
    assert len(list(quarantine.iter_all(limit=100))) == 4


def test_iter_all_pages_beyond_a_thousand_records(quarantine: SqliteQuarantine) -> None:
    # GIVEN 2,500 rejections
    quarantine.add([rejection("b", n) for n in range(2500)])
    # WHEN iterating all, and with limits around the page size
    # THEN every record comes once, in order, and a limit is exact
    assert [r.index for r in quarantine.iter_all()] == list(range(2500))
    assert [r.index for r in quarantine.iter_all(limit=1000)] == list(range(1000))
    assert [r.index for r in quarantine.iter_all(limit=1001)] == list(range(1001))
    assert [r.index for r in quarantine.iter_all(limit=2499)] == list(range(2499))
    assert len(list(quarantine.iter_all(limit=10_000))) == 2500


def test_records_added_during_iteration_are_not_yielded(quarantine: SqliteQuarantine) -> None:
    # GIVEN 1,500 records (more than one page) and an iteration that has started
    quarantine.add([rejection("old", n) for n in range(1500)])
    iterator = quarantine.iter_all()
    first = next(iterator)
    # WHEN records are added in the middle of it (as a replay would)
    quarantine.add([rejection("new", n) for n in range(10)])
    rest = list(iterator)
    # THEN only the records that existed when it started are yielded
    assert first.batch_id == "old"
    assert len(rest) == 1499
    assert {r.batch_id for r in rest} == {"old"}
    assert quarantine.count() == 1510


# --- SqliteBatchStore -----------------------------------------------------------------------------


@pytest.fixture
def batches(db: Database) -> SqliteBatchStore:
    return SqliteBatchStore(db)


def pending(batch_id: str, received_at_ms: int = M_MS, received: int = 10) -> BatchRecord:
    return BatchRecord(batch_id, f"raw/{batch_id}.ndjson", "test", received_at_ms, received)


# --- SqliteInsightsStore --------------------------------------------------------------------------


@pytest.fixture
def insights(db: Database) -> SqliteInsightsStore:
    return SqliteInsightsStore(db)


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


def test_apply_is_once_per_batch_id(insights: SqliteInsightsStore) -> None:
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


def test_counts_add_across_batches(insights: SqliteInsightsStore) -> None:
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


def test_refusals_count_at_the_batch_minute_and_events_at_their_own(insights: SqliteInsightsStore) -> None:
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


def test_user_sketches_merge_across_batches_for_the_same_minute(insights: SqliteInsightsStore) -> None:
    # GIVEN users 0..999 in batch b1 and users 500..1499 in batch b2, same minute
    insights.apply("b1", aggregate([fact(n, user=f"u-{n}") for n in range(1000)]))
    insights.apply("b2", aggregate([fact(10_000 + n, user=f"u-{n}") for n in range(500, 1500)]))
    # WHEN the minute is read
    row = by_minute(insights.read(M, M + 60))[M]
    # THEN the users are the union (1,500), not the sum (2,000), and lag holds every event
    assert user_estimate(row) == pytest.approx(1500, rel=0.02)
    assert lag_count(row) == 2000
    assert row.events == {"page_view": 2000}


def test_sketches_of_different_minutes_stay_apart(insights: SqliteInsightsStore) -> None:
    insights.apply("b1", aggregate([fact(n, user=f"u-{n}") for n in range(100)]))
    insights.apply("b2", aggregate([fact(1000 + n, at_ms=M_MS + 60_000, user=f"v-{n}") for n in range(40)]))
    rows = by_minute(insights.read(M, M + 120))
    assert user_estimate(rows[M]) == pytest.approx(100, abs=1)
    assert user_estimate(rows[M + 60]) == pytest.approx(40, abs=1)


def test_funnel_counts_a_step_only_when_the_earlier_steps_of_the_session_exist(
    insights: SqliteInsightsStore,
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


def test_earlier_steps_count_up_to_the_lookback_before_the_window(insights: SqliteInsightsStore) -> None:
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


def test_funnel_counts_each_session_once_per_step(insights: SqliteInsightsStore) -> None:
    insights.apply("b1", aggregate([fact(n, session="s1", at_ms=M_MS + n * 1000) for n in range(5)]))
    insights.apply("b2", aggregate([fact(10 + n, session="s1") for n in range(5)]))
    assert insights.read(M, M + 60).funnel == [1, 0, 0]


@pytest.mark.parametrize("later_first", [True, False])
def test_a_session_counts_once_in_every_window_where_it_reached_a_step(
    insights: SqliteInsightsStore, later_first: bool
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


def test_read_window_is_since_inclusive_until_exclusive(insights: SqliteInsightsStore) -> None:
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


def test_a_database_of_another_schema_version_is_refused_with_advice(tmp_path: Path) -> None:
    # GIVEN a database written by another version of eventpipe
    path = tmp_path / "eventpipe.db"
    Database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    # WHEN / THEN opening it says what to do
    with pytest.raises(StorageError, match=r"another version of eventpipe.*EVENTPIPE_DATA_DIR"):
        Database(path)


def test_a_stored_payload_is_read_back_from_its_segment(curated: SqliteCuratedStore) -> None:
    curated.put_new("b1", [(uid(1), "page_view", b'{"n":1}'), (uid(2), "purchase", b'{"n":2}')])
    curated.put_new("b2", [(uid(2), "purchase", b'{"n":"dup"}'), (uid(3), "signup", b'{"n":3}')])
    assert [curated.get(uid(n)) for n in (1, 2, 3)] == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    assert curated.get(uid(4)) is None

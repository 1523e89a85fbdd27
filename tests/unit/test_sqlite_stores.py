"""The SQLite stores of the local runtime: curated events, quarantine, batches, insights, and the database."""

from __future__ import annotations

import sqlite3
import uuid
from typing import TYPE_CHECKING

import pytest

from eventpipe.adapters.local import (
    Database,
    FolderBucket,
    SqliteBatchStore,
    SqliteCuratedStore,
    SqliteQuarantine,
)
from eventpipe.core.errors import StorageError
from eventpipe.core.model import BatchRecord, Reason, Rejection

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


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


def test_a_stage_whose_put_new_never_came_does_not_stop_a_later_put_new_writing_its_segment(
    curated: SqliteCuratedStore,
) -> None:
    # GIVEN a batch staged, then its step failed before put_new (nothing indexed)
    curated.stage("b1", [(uid(1), "page_view", b'{"try":1}')])
    # WHEN the same batch id is stored later by a put_new with no stage before it, with other rows
    assert curated.put_new("b1", [(uid(1), "page_view", b'{"try":2}'), (uid(2), "signup", b'{"try":2}')]) == [
        True,
        True,
    ]
    # THEN that put_new wrote its own segment: each stored event reads back its own payload
    assert [curated.get(uid(n)) for n in (1, 2)] == [b'{"try":2}', b'{"try":2}']


def test_put_new_after_stage_writes_the_segment_once(curated: SqliteCuratedStore, tmp_path: Path) -> None:
    rows = [(uid(1), "page_view", b'{"n":1}')]
    curated.stage("b1", rows)
    segment = next((tmp_path / "curated").rglob("b1.ndjson"))
    segment.unlink()  # so that a second write would show
    # WHEN put_new is told the rows were staged
    assert curated.put_new("b1", rows, staged=True) == [True]
    # THEN it did not write the segment again (stage's write is the one)
    assert not segment.exists()

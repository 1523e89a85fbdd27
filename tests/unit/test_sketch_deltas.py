"""The local insights store's sketch deltas: a batch appends its own sketches, a fold unites them later.

Reads must not tell the two apart: whatever has been folded, a window counts each batch once.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from eventpipe.adapters.local import Database, SqliteInsightsStore
from eventpipe.adapters.local.database import SCHEMA_VERSION
from eventpipe.core.aggregate import aggregate_batch
from eventpipe.core.facts import Fact
from eventpipe.core.insight_counters import minute_changes
from eventpipe.core.insights import build_insights

if TYPE_CHECKING:
    from pathlib import Path

M = 1_795_845_600  # 2026-11-28T06:00:00Z, epoch seconds
M_MS = M * 1000
STEPS = ("page_view", "add_to_cart", "purchase")


def batch(number: int) -> Any:
    """Forty events over four minutes: users and sessions that recur across batches, every funnel step."""
    facts = [
        Fact(
            str(uuid.uuid4()),
            STEPS[(number + n) % 3],
            M_MS - (n % 4 + 1) * 60_000,
            f"u-{(number * 7 + n) % 90}",
            f"s-{(number * 3 + n) % 50}",
            1.5,
        )
        for n in range(40)
    ]
    return aggregate_batch(facts, received_at_ms=M_MS - 1, now_ms=M_MS, rejected={}, duplicates=0)


def document(store: SqliteInsightsStore) -> Any:
    return build_insights(store.read(M - 3600, M), since_ms=(M - 3600) * 1000, until_ms=M_MS, currency="EUR")


def deltas(db: Database) -> int:
    with db.reading() as conn:
        return int(conn.execute("SELECT COUNT(*) FROM sketch_deltas").fetchone()[0])


def test_a_window_reads_the_same_whether_its_deltas_are_folded_or_not(tmp_path: Path) -> None:
    # GIVEN a store that never folds by itself and one that folds after every batch
    lazy_db, eager_db = Database(tmp_path / "lazy.db"), Database(tmp_path / "eager.db")
    lazy = SqliteInsightsStore(lazy_db, fold_rows=10**9, fold_batches=10**9)
    eager = SqliteInsightsStore(eager_db, fold_batches=1)
    # WHEN the same twelve batches are applied to both, one of them twice
    for number in range(12):
        for store in (lazy, eager):
            assert store.apply(f"b{number}", batch(number))
    assert not lazy.apply("b3", batch(3))
    # THEN the unfolded deltas read as the folded sketches do, and again once folded
    assert deltas(lazy_db) > 0
    assert deltas(eager_db) == 0
    expected = document(eager)
    assert expected["totals"]["unique_users"] == 90
    assert expected["funnel"] == {"page_view": 50, "add_to_cart": 50, "purchase": 50}
    assert document(lazy) == expected
    lazy.fold()
    assert deltas(lazy_db) == 0
    assert document(lazy) == expected
    for db, store in ((lazy_db, lazy), (eager_db, eager)):
        store.close()
        db.close()


def test_a_fold_that_is_rolled_back_leaves_its_deltas_to_the_next_one(tmp_path: Path) -> None:
    # GIVEN a store that folds every second batch, with one batch applied
    db = Database(tmp_path / "db.sqlite")
    store = SqliteInsightsStore(db, fold_batches=2)
    reference = SqliteInsightsStore(Database(tmp_path / "reference.db"), fold_batches=1)
    store.apply("b0", batch(0))
    reference.apply("b0", batch(0))
    # WHEN the next batch's transaction folds, then fails (its caller's later write, say)
    with pytest.raises(RuntimeError, match="later write"):
        fold_then_fail(db, store)
    # THEN nothing of it is left: b0's deltas are back, b1 is not counted, not even by the next fold
    assert deltas(db) == len(_delta_keys(batch(0)))
    assert document(store) == document(reference)
    for number in (2, 3):
        store.apply(f"b{number}", batch(number))
        reference.apply(f"b{number}", batch(number))
    assert deltas(db) == 0
    assert document(store) == document(reference)
    # and its retry counts once
    store.apply("b1", batch(1))
    reference.apply("b1", batch(1))
    assert document(store) == document(reference)


def fold_then_fail(db: Database, store: SqliteInsightsStore) -> None:
    with db.transaction():
        store.apply("b1", batch(1))
        assert deltas(db) == 0  # folded inside the transaction
        raise RuntimeError("a later write of the batch failed")


def _delta_keys(aggregate: Any) -> list[tuple[int, str, str]]:
    return [(c.minute, c.segment, name) for c in minute_changes(aggregate) for name in c.sketches]


def test_a_database_of_schema_5_gains_the_deltas_table(tmp_path: Path) -> None:
    # GIVEN a database as schema 5 left it: no sketch_deltas
    path = tmp_path / "db.sqlite"
    Database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE sketch_deltas")
        conn.execute("PRAGMA user_version = 5")
    conn.close()
    # WHEN it is opened and a batch applied
    db = Database(path)
    store = SqliteInsightsStore(db)
    store.apply("b0", batch(0))
    # THEN the batch's deltas are there and the schema is the current one
    assert deltas(db) > 0
    assert document(store)["totals"]["events"] == 40
    db.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()

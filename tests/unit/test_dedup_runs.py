"""The curated store's runs and its filter of closed runs: exact whatever the runs, the filter file or the rollbacks."""

from __future__ import annotations

import random
import sqlite3
import uuid
import zlib
from typing import TYPE_CHECKING

import orjson
import pytest

from eventpipe.adapters.local import Database, FolderBucket, SqliteCuratedStore
from eventpipe.adapters.local.curated import uuid_key
from eventpipe.adapters.local.database import SCHEMA_VERSION
from eventpipe.adapters.local.dedup_runs import BITS_PER_ID, BUILT_BITS_PER_ID, DAY_MS, filter_mib
from eventpipe.adapters.local.dedup_runs import FILTER_GROUPS as GROUPS
from eventpipe.adapters.local.id_filter import HASHES, IdFilter, _hash

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DAY0_MS = 20_000 * DAY_MS


class StepClock:
    def __init__(self) -> None:
        self.ms = DAY0_MS

    def now_ms(self) -> int:
        return self.ms


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "eventpipe.db")
    yield database
    database.close()


def uid(n: int) -> str:
    return str(uuid.UUID(int=n))


def store(db: Database, tmp_path: Path, clock: StepClock, **options: int) -> SqliteCuratedStore:
    segments = FolderBucket(tmp_path / "curated", prefixes=())
    return SqliteCuratedStore(db, segments, clock=clock, filter_path=tmp_path / "dedup.filter", **options)


def rows(*numbers: int) -> list[tuple[str, str, bytes]]:
    return [(uid(n), "page_view", b"{}") for n in numbers]


def runs(db: Database) -> list[tuple[int, int]]:
    with db.reading() as conn:
        return [(int(r), int(n)) for r, n in conn.execute("SELECT run, ids FROM curated_runs ORDER BY run")]


def test_duplicates_of_closed_runs_are_found_and_owners_and_payloads_answer(db: Database, tmp_path: Path) -> None:
    # GIVEN ids stored over three days, the last day past the run cap (so two runs that day)
    clock = StepClock()
    curated = store(db, tmp_path, clock, run_cap=4)
    assert curated.put_new("d0", rows(1, 2, 3)) == [True] * 3
    clock.ms += DAY_MS
    assert curated.put_new("d1", rows(4, 5, 6)) == [True] * 3
    clock.ms += DAY_MS
    assert curated.put_new("d2a", rows(7, 8, 9)) == [True] * 3
    assert curated.put_new("d2b", rows(10, 11)) == [True] * 2
    assert [ids for _, ids in runs(db)] == [3, 3, 3, 2]
    # WHEN the same ids come again, mixed with new ones
    flags = curated.put_new("again", rows(1, 12, 5, 9, 11, 13))
    # THEN each one stored before, in whichever run, is a duplicate; owners and payloads answer
    assert flags == [False, True, False, False, False, True]
    assert curated.owners([uid(1), uid(5), uid(9), uid(11), uid(14)]) == {
        uid(1): "d0",
        uid(5): "d1",
        uid(9): "d2a",
        uid(11): "d2b",
    }
    assert curated.get(uid(4)) == b"{}"
    assert curated.count() == 13
    # AND a retry of a batch of a closed run still answers new for that batch
    assert curated.put_new("d1", rows(4, 5, 6)) == [True] * 3


def test_more_resent_ids_than_one_query_binds_are_all_found(db: Database, tmp_path: Path) -> None:
    # GIVEN 2,000 ids stored over two days (two closed runs), and the next day
    clock = StepClock()
    curated = store(db, tmp_path, clock)
    curated.put_new("d0", rows(*range(0, 1000)))
    clock.ms += DAY_MS
    curated.put_new("d1", rows(*range(1000, 2000)))
    clock.ms += DAY_MS
    # WHEN one batch sends them all again (more (run, id) pairs than one query binds), with new ones
    flags = curated.put_new("again", rows(*range(0, 2000, 2), *range(5000, 5100)))
    # THEN every one of them is a duplicate, every new one is new
    assert flags == [False] * 1000 + [True] * 100


def test_the_filter_is_saved_and_a_restart_uses_it_or_builds_it_again(db: Database, tmp_path: Path) -> None:
    # GIVEN a closed run of ids, and the filter file the store saved
    clock = StepClock()
    store(db, tmp_path, clock).put_new("d0", rows(*range(1, 101)))
    clock.ms += DAY_MS
    store(db, tmp_path, clock).put_new("d1", rows(101))
    saved = tmp_path / "dedup.filter"
    assert saved.is_file()
    loaded = IdFilter.load(saved, 16)
    assert loaded is not None
    assert sum(ids for ids, _ in loaded[1].values()) == 100
    # WHEN a new process opens the store: with the file, with a damaged one, and with none
    for damage in (None, b"garbage", b""):
        if damage is not None:
            saved.write_bytes(damage)
        fresh = store(db, tmp_path, clock)
        # THEN every stored id is still a duplicate
        assert fresh.put_new(f"retry-{damage!r}", rows(5, 50, 100, 101)) == [False] * 4
        assert IdFilter.load(saved, 16) is not None  # and the file is good again


def test_a_filter_file_of_another_database_is_not_trusted(tmp_path: Path) -> None:
    # GIVEN a filter saved by one data directory, copied beside another database with other ids
    clock = StepClock()
    first = Database(tmp_path / "a" / "eventpipe.db")
    store(first, tmp_path / "a", clock).put_new("a", rows(1))
    clock.ms += DAY_MS
    store(first, tmp_path / "a", clock).put_new("a2", rows(2))
    first.close()
    second = Database(tmp_path / "b" / "eventpipe.db")
    clock.ms -= DAY_MS
    store(second, tmp_path / "b", clock).put_new("b", rows(7))
    clock.ms += DAY_MS
    (tmp_path / "b" / "dedup.filter").write_bytes((tmp_path / "a" / "dedup.filter").read_bytes())
    # WHEN the second store sees its own id 7 again (its run has the same label as the first's run)
    flags = store(second, tmp_path / "b", clock).put_new("b2", rows(7))
    second.close()
    # THEN it is a duplicate: runs are named by tokens of their own database, not by their label
    assert flags == [False]


def test_a_run_that_grew_after_the_filter_covered_it_is_added_again(db: Database, tmp_path: Path) -> None:
    # GIVEN a filter that covered a run with fewer ids than it holds now (a roll-over undone by a
    # rollback, then more ids written to the run by another process)
    clock = StepClock()
    curated = store(db, tmp_path, clock)
    curated.put_new("d0", rows(1))
    clock.ms += DAY_MS
    curated.put_new("d1", rows(2))  # closes the run of day 0 and covers it in the filter
    with db.transaction() as conn:  # another writer: one more id in the closed run
        (run, _), *_ = runs(db)
        conn.execute(
            "INSERT INTO curated (event_id, batch_id, event_type, idx, run) VALUES (?, 'other', 'page_view', 0, ?)",
            (uuid_key(uid(3)), run),
        )
        conn.execute("UPDATE curated_runs SET ids = ids + 1 WHERE run = ?", (run,))
    # WHEN the same store, and a restarted one, see that id
    # THEN both know it is stored
    assert curated.put_new("d1b", rows(3)) == [False]
    assert store(db, tmp_path, clock).put_new("d1c", rows(3)) == [False]


def test_a_failed_write_leaves_no_filter_that_misses_an_id(db: Database, tmp_path: Path) -> None:
    # GIVEN a day change whose first write fails after the new run was started (its rollback reopens
    # the previous run)
    clock = StepClock()
    curated = store(db, tmp_path, clock)
    curated.put_new("d0", rows(1))
    clock.ms += DAY_MS

    def fail_after_storing() -> None:
        with db.transaction():
            curated.put_new("d1", rows(2))
            raise RuntimeError("the outer transaction fails after the store's savepoint")

    with pytest.raises(RuntimeError):
        fail_after_storing()
    # WHEN the clock goes back (the old run is the current one again) and more ids land in it
    clock.ms -= DAY_MS
    curated.put_new("d0b", rows(3))
    clock.ms += DAY_MS
    # THEN after the day changes again (the run closes), every id of that run is found
    assert curated.put_new("d1", rows(2)) == [True]
    assert curated.put_new("d1b", rows(1, 3, 4)) == [False, False, True]
    assert store(db, tmp_path, clock).put_new("d1c", rows(1, 3)) == [False, False]


def test_the_curated_store_matches_a_set_whatever_the_runs_and_days(tmp_path: Path) -> None:
    # GIVEN a small filter, small runs (more runs than groups) and days passing, and random batches
    # with retries, retried batches and ids repeated within a batch
    database = Database(tmp_path / "eventpipe.db")
    clock = StepClock()
    curated = store(database, tmp_path, clock, filter_mib=1, run_cap=20)
    rnd = random.Random(3)
    owner: dict[str, str] = {}
    for number in range(120):
        batch_id = f"b{number % 90}"  # some batch ids come back: retries of a step
        ids = [uid(rnd.randrange(1, 1500)) for _ in range(rnd.randrange(1, 40))]
        if number % 7 == 0:
            clock.ms += DAY_MS
        # WHEN each batch is stored
        flags = curated.put_new(batch_id, [(event_id, "page_view", b"{}") for event_id in ids])
        # THEN the flags are those of a set: new once, or again for the batch that stored it
        expected, seen = [], set()
        for event_id in ids:
            expected.append(event_id not in seen and owner.setdefault(event_id, batch_id) == batch_id)
            seen.add(event_id)
        assert flags == expected
    assert curated.count() == len(owner)
    assert len(runs(database)) > GROUPS  # several runs share a group
    database.close()


def test_runs_emptied_by_retention_are_forgotten_and_their_group_rebuilt(db: Database, tmp_path: Path) -> None:
    # GIVEN closed runs, one per group and one more, whose first three are then deleted (as retention does)
    clock = StepClock()
    curated = store(db, tmp_path, clock, filter_mib=1)
    for day in range(GROUPS + 1):
        curated.put_new(f"d{day}", rows(*range(day * 10_000, day * 10_000 + 2_000)))
        clock.ms += DAY_MS
    curated.put_new("today", rows(99_999))
    before = IdFilter.load(tmp_path / "dedup.filter", 1)
    assert before is not None
    groups = [group for _, group in before[1].values()]
    with db.transaction() as conn:
        conn.execute("DELETE FROM curated WHERE batch_id IN ('d0', 'd1', 'd2')")
    # WHEN the next day starts
    clock.ms += DAY_MS
    curated.put_new("later", rows(99_998))
    # THEN the emptied runs are gone from the list to look in, and their groups hold only the runs kept
    assert len(runs(db)) == GROUPS + 1 - 3 + 2
    assert {run for _, run in batch_runs(db)} == {run for run, ids in runs(db) if ids}  # and the batches' runs
    after = IdFilter.load(tmp_path / "dedup.filter", 1)
    assert after is not None
    assert len(after[1]) == GROUPS + 1 - 3 + 1
    for group in groups[:3]:
        assert after[0].fill_ratio(group) < before[0].fill_ratio(group)
    # AND the deleted ids are new again, the kept ones are not
    assert curated.put_new("again", rows(5, 10_005, 30_005, 80_005)) == [True, True, False, False]


def test_a_database_of_schema_4_is_migrated_with_its_ids(tmp_path: Path) -> None:
    # GIVEN a data directory written by the previous version (one unique index on the id)
    path = tmp_path / "eventpipe.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE curated (id INTEGER PRIMARY KEY, event_id BLOB NOT NULL UNIQUE, batch_id TEXT NOT NULL,
                                  event_type TEXT NOT NULL, idx INTEGER NOT NULL);
            CREATE TABLE batches (batch_id TEXT PRIMARY KEY);
            PRAGMA user_version = 4;
            """
        )
        conn.executemany(
            "INSERT INTO curated (event_id, batch_id, event_type, idx) VALUES (?, 'old', 'signup', ?)",
            [(uuid_key(uid(n)), n) for n in range(1, 4)],
        )
    # WHEN this version opens it
    database = Database(path)
    curated = store(database, tmp_path, StepClock())
    # THEN the old ids are still known, new ones stored, and the schema is the current one
    assert curated.put_new("new", rows(2, 4)) == [False, True]
    assert curated.owners([uid(1), uid(4)]) == {uid(1): "old", uid(4): "new"}
    assert curated.count_by_type() == {"signup": 3, "page_view": 1}
    database.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'curated_v4'").fetchone()[0] == 0


def batch_runs(db: Database) -> set[tuple[str, int]]:
    with db.reading() as conn:
        return {(str(b), int(r)) for b, r in conn.execute("SELECT batch_id, run FROM curated_batches")}


def test_a_database_of_schema_6_is_migrated_with_the_runs_of_its_batches(tmp_path: Path) -> None:
    # GIVEN a data directory of schema 6 (no record of the runs each batch stored ids in), with
    # ids of two batches in a run now closed
    clock = StepClock()
    database = Database(tmp_path / "eventpipe.db")
    store(database, tmp_path, clock).put_new("d0", rows(1, 2))
    store(database, tmp_path, clock).put_new("d0b", rows(3))
    closed = runs(database)[0][0]
    with database.transaction() as conn:
        conn.execute("DROP TABLE curated_batches")
        conn.execute("PRAGMA user_version = 6")
    database.close()
    clock.ms += DAY_MS
    # WHEN this version opens it
    database = Database(tmp_path / "eventpipe.db")
    curated = store(database, tmp_path, clock)
    # THEN each batch's run is recorded from its rows, and the schema is the current one
    assert batch_runs(database) == {("d0", closed), ("d0b", closed)}
    with database.reading() as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # AND a retry of a batch of the closed run is new again for that batch, a duplicate for another
    assert curated.put_new("d0", rows(1, 2, 3)) == [True, True, False]
    assert curated.put_new("d1", rows(1, 3, 4)) == [False, False, True]
    assert batch_runs(database) == {("d0", closed), ("d0b", closed), ("d1", runs(database)[-1][0])}
    database.close()


def test_an_id_of_a_closed_run_is_told_apart_by_batch_whether_or_not_its_row_is_read(tmp_path: Path) -> None:
    # GIVEN ids stored by batches over several days (closed runs), one batch storing ids on two days
    clock = StepClock()
    database = Database(tmp_path / "eventpipe.db")
    curated = store(database, tmp_path, clock, run_cap=3)
    assert curated.put_new("a", rows(1, 2)) == [True, True]
    clock.ms += DAY_MS
    assert curated.put_new("b", rows(3, 4, 5)) == [True] * 3
    assert curated.put_new("a", rows(1, 2, 6)) == [True] * 3  # a's retry, with an id it had not stored
    clock.ms += DAY_MS
    assert len(runs(database)) == 3
    # WHEN batches that stored ids in a closed run (their owners read) and batches that did not (the
    # index alone) see old ids again, mixed with new ones
    # THEN each id is new for the batch that stored it, a duplicate for any other
    assert curated.put_new("a", rows(1, 2, 6, 3, 7)) == [True, True, True, False, True]
    assert curated.put_new("b", rows(3, 5, 1, 6)) == [True, True, False, False]
    assert curated.put_new("c", rows(1, 3, 6, 8)) == [False, False, False, True]
    assert curated.put_new("c", rows(1, 8)) == [False, True]  # its own id of the current run
    assert curated.owners([uid(n) for n in (1, 3, 6, 7, 8)]) == {
        uid(1): "a",
        uid(3): "b",
        uid(6): "a",
        uid(7): "a",
        uid(8): "c",
    }
    database.close()


def groups_of(id_filter: IdFilter, keys: list[bytes]) -> list[int]:
    """For each key, the mask of the groups that may hold it (0: certainly none)."""
    masks = dict(id_filter.maybe_stored(keys))
    return [masks.get(position, 0) for position in range(len(keys))]


def test_the_filter_groups_hold_what_was_added() -> None:
    id_filter = IdFilter(1)
    keys = [uuid_key(uid(n)) for n in range(1000)]
    id_filter.add(keys[:500], 2)
    id_filter.add(keys[500:], 5)
    masks = groups_of(id_filter, keys)
    assert all(mask >> 2 & 1 for mask in masks[:500])
    assert all(mask >> 5 & 1 for mask in masks[500:])
    id_filter.clear(2)
    assert all(mask >> 5 & 1 for mask in groups_of(id_filter, keys[500:]))
    assert id_filter.fill_ratio(2) == 0.0 < id_filter.fill_ratio(5)
    with pytest.raises(ValueError, match="at least 1 MiB"):
        IdFilter(0)


def test_the_filter_positions_are_the_ones_saved_filters_were_built_with() -> None:
    # GIVEN ids (random and clock-like) and filters of the smallest and the largest size
    rnd = random.Random(5)
    keys = [rnd.getrandbits(128).to_bytes(16, "big") for _ in range(300)] + [uuid_key(uid(n)) for n in range(300)]
    hashes = [int(h) for h in _hash(keys)]
    for mib in (1, 3, 64):
        # WHEN the filter computes where each id's bits are
        positions = IdFilter(mib)._bit_positions(keys)
        # THEN they are the 64-bit double hashing of the file's layout, in Python integers
        slots = mib << 18
        expected = [
            [((step * (h | 1) + (h >> 32)) & 0xFFFFFFFF) * slots >> 32 for h in hashes] for step in range(HASHES)
        ]
        assert positions.tolist() == expected


def test_a_filter_that_cannot_be_saved_leaves_the_store_exact(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a filter path in a folder that does not exist (the file cannot be written)
    database = Database(tmp_path / "eventpipe.db")
    clock = StepClock()
    segments = FolderBucket(tmp_path / "curated", prefixes=())
    curated = SqliteCuratedStore(database, segments, clock=clock, filter_path=tmp_path / "missing" / "dedup.filter")
    curated.put_new("d0", rows(1, 2))
    clock.ms += DAY_MS
    # WHEN a run closes (the filter is saved) and the ids come again
    curated.put_new("d1", rows(3))
    # THEN the failure is logged, nothing else: the ids are still duplicates
    assert "cannot save the dedup filter" in caplog.text
    assert curated.put_new("d1b", rows(1, 2, 3, 4)) == [False, False, False, True]
    database.close()


def test_a_filter_file_of_another_layout_or_too_large_is_ignored(tmp_path: Path) -> None:
    saved = tmp_path / "dedup.filter"
    IdFilter(2).save(saved, {"token": (3, 0)})
    loaded = IdFilter.load(saved, 2)
    assert loaded is not None
    assert loaded[0].mib == 2  # its size is read from the file
    assert IdFilter.load(saved, 1) is None  # larger than the memory allowed
    saved.write_bytes(saved.read_bytes() + b"x")  # trailing bytes
    assert IdFilter.load(saved, 2) is None
    for header in (b"[1, 2]", b"{not json", b'{"mib": "2"}', b'{"mib": 0}'):  # malformed headers
        saved.write_bytes(b"eventpipe-id-filter 2\n" + len(header).to_bytes(4, "big") + header + bytes(2 << 20))
        assert IdFilter.load(saved, 2) is None


def test_a_saved_filter_is_its_file_mapped_and_changes_stay_private_until_saved(tmp_path: Path) -> None:
    # GIVEN a filter of some ids, saved
    saved = tmp_path / "dedup.filter"
    keys = [uuid_key(uid(n)) for n in range(2000)]
    id_filter = IdFilter(1)
    id_filter.add(keys[:1000], 3)
    assert not id_filter.mapped
    id_filter.save(saved, {"a": (1000, 3)})
    # THEN its bits are now the file's pages, and a load maps the file too
    assert id_filter.mapped
    loaded = IdFilter.load(saved, 1)
    assert loaded is not None
    assert loaded[0].mapped
    # WHEN the loaded filter takes more ids (copy-on-write) without saving
    loaded[0].add(keys[1000:], 4)
    assert all(mask >> 4 & 1 for mask in groups_of(loaded[0], keys[1000:]))
    # THEN the file is unchanged (its checksum holds, the new ids are not in it)
    again = IdFilter.load(saved, 1)
    assert again is not None
    assert again[0].fill_ratio(4) == 0.0
    assert all(mask >> 3 & 1 for mask in groups_of(again[0], keys[:1000]))
    # AND once saved, the file holds them and the first filter, mapped to the file it replaced, is unchanged
    loaded[0].save(saved, {"a": (1000, 3), "b": (1000, 4)})
    reloaded = IdFilter.load(saved, 1)
    assert reloaded is not None
    assert reloaded[1] == {"a": (1000, 3), "b": (1000, 4)}
    assert all(mask >> 4 & 1 for mask in groups_of(reloaded[0], keys[1000:]))
    assert id_filter.fill_ratio(4) == 0.0


def test_a_filter_file_saved_before_its_bits_started_on_a_page_is_still_read(tmp_path: Path) -> None:
    # GIVEN a file in the previous version's layout: the same fields, its header not padded
    keys = [uuid_key(uid(n)) for n in range(500)]
    id_filter = IdFilter(1)
    id_filter.add(keys, 7)
    header = orjson.dumps({"mib": 1, "hashes": HASHES, "groups": GROUPS, "covers": {"t": [500, 7]}})
    body = bytes(id_filter._slots.data)
    saved = tmp_path / "dedup.filter"
    saved.write_bytes(
        b"eventpipe-id-filter 2\n"
        + len(header).to_bytes(4, "big")
        + header
        + body
        + zlib.crc32(body, zlib.crc32(header)).to_bytes(4, "big")
    )
    # WHEN it is loaded
    loaded = IdFilter.load(saved, 1)
    # THEN it is read into memory (not mapped), with its ids and runs, and its next save maps it
    assert loaded is not None
    assert not loaded[0].mapped
    assert loaded[1] == {"t": (500, 7)}
    assert all(mask >> 7 & 1 for mask in groups_of(loaded[0], keys))
    loaded[0].save(saved, loaded[1])
    assert loaded[0].mapped
    # AND the same file one byte short, or one byte longer, is ignored
    for damaged in (saved.read_bytes()[:-1], saved.read_bytes() + b"x"):
        saved.write_bytes(damaged)
        assert IdFilter.load(saved, 1) is None


def test_the_filter_is_sized_to_the_closed_ids_within_the_memory_allowed(db: Database, tmp_path: Path) -> None:
    # GIVEN a closed run, then one its counter says holds two million ids (a large store, cheaply)
    clock = StepClock()
    curated = store(db, tmp_path, clock)
    curated.put_new("d0", rows(*range(1, 1001)))
    clock.ms += DAY_MS
    curated.put_new("d1", rows(1001))
    saved = tmp_path / "dedup.filter"

    def filter_mib() -> int:
        loaded = IdFilter.load(saved, 4096)
        assert loaded is not None
        return loaded[0].mib

    assert filter_mib() == 1
    with db.transaction() as conn:
        conn.execute("UPDATE curated_runs SET ids = 2000000 WHERE run = (SELECT MIN(run) FROM curated_runs)")
    # WHEN the store next looks in its closed runs, with the default most memory and with 4 MiB
    # THEN the filter is built again for them at 24 bits per id (6 MiB), or at the most allowed,
    # and every stored id is still found
    assert curated.put_new("again", rows(5, 1001, 2000)) == [False, False, True]
    assert filter_mib() == 6
    small = store(db, tmp_path, clock, filter_mib=4)
    assert small.put_new("again2", rows(6, 2001)) == [False, True]
    assert filter_mib() == 4
    # AND once the closed runs hold few ids again (retention), it is built again smaller
    with db.transaction() as conn:
        conn.execute("UPDATE curated_runs SET ids = 1000 WHERE run = (SELECT MIN(run) FROM curated_runs)")
    assert curated.put_new("again3", rows(7, 2002)) == [False, True]
    assert filter_mib() == 1


def test_the_filter_size_follows_bits_per_id() -> None:
    assert filter_mib(0, BITS_PER_ID, 64) == 1
    assert filter_mib(10_000_000, BITS_PER_ID, 64) == 20  # 16 bits: 19.07 MiB, rounded up
    assert filter_mib(10_000_000, BUILT_BITS_PER_ID, 64) == 29
    assert filter_mib(100_000_000, BUILT_BITS_PER_ID, 64) == 64  # the most allowed


def test_two_processes_writing_in_turn_agree_with_a_set(tmp_path: Path) -> None:
    # GIVEN two stores on one data directory, each with its own connection and filter (as two
    # processes: `eventpipe ingest` after `eventpipe up` stopped), small runs and days passing
    clock = StepClock()
    first, second = Database(tmp_path / "eventpipe.db"), Database(tmp_path / "eventpipe.db")
    stores = [store(first, tmp_path, clock, run_cap=15), store(second, tmp_path, clock, run_cap=15)]
    rnd = random.Random(11)
    owner: dict[str, str] = {}
    for number in range(80):
        if number % 9 == 0:
            clock.ms += DAY_MS
        ids = [uid(rnd.randrange(1, 600)) for _ in range(rnd.randrange(1, 12))]
        # WHEN they store batches in turn
        flags = stores[rnd.randrange(2)].put_new(f"b{number}", [(event_id, "page_view", b"{}") for event_id in ids])
        # THEN each answers as one set would: an id stored by the other one is a duplicate
        expected, seen = [], set()
        for event_id in ids:
            expected.append(event_id not in seen and owner.setdefault(event_id, f"b{number}") == f"b{number}")
            seen.add(event_id)
        assert flags == expected
    first.close()
    second.close()

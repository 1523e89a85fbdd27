"""The lake writer: every curated event lands once, in its event-time partition, whatever fails."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pytest

from eventpipe.core.errors import StorageError
from eventpipe.lake import writer as writer_module
from eventpipe.lake.manifest import LakeManifest
from eventpipe.lake.query import run_query
from eventpipe.lake.writer import LakeWriter
from tests.conftest import make_event
from tests.lake.conftest import ingest

if TYPE_CHECKING:
    import sqlite3

    from eventpipe.localrun.runtime import LocalRuntime


def _count(runtime: LocalRuntime, where: str = "true") -> int:
    return int(run_query(runtime.settings.data_dir, f"SELECT count(*) FROM events WHERE {where}").rows[0][0])


def test_curated_events_land_in_their_hour_with_the_columns(runtime: LocalRuntime, lake: LakeWriter) -> None:
    # GIVEN events in two hours, a purchase with revenue, and an invalid event
    purchase = make_event("purchase", occurred_at="2026-11-28T05:59:30+00:00")
    early = make_event("page_view", occurred_at="2026-11-28T04:10:00.000Z", anonymous_id="a-9")
    ingest(runtime, purchase, early, {"event_id": "x", "event_type": "nope"})
    # WHEN the lake catches up
    written = lake.sync()
    # THEN each curated event is in the partition of its event time, with its columns
    assert written == 2
    files = sorted(p.relative_to(lake.root).as_posix() for p in lake.root.rglob("*.parquet"))
    assert [f.rsplit("/", 1)[0] for f in files] == ["dt=2026-11-28/hour=04", "dt=2026-11-28/hour=05"]
    assert pq.read_metadata(lake.root / files[0]).row_group(0).column(0).compression == "ZSTD"
    result = run_query(
        runtime.settings.data_dir,
        "SELECT event_id, event_type, user_id, anonymous_id, browser, os, device_type, bot, utm_source,"
        " utm_medium, utm_campaign, referrer_host, referrer_medium, revenue, dt, hour,"
        " json_extract_string(properties, '$.order_id'), typeof(occurred_at) FROM events ORDER BY occurred_at",
    )
    early_row, purchase_row = result.rows
    assert early_row[0] == early["event_id"]
    assert early_row[3] == "a-9"
    assert str(early_row[14]) == "2026-11-28"
    assert early_row[15] == 4
    assert purchase_row[:14] == (
        purchase["event_id"],
        "purchase",
        "u-1",
        None,
        "Firefox",
        "Linux",
        "desktop",
        False,
        "news",
        "email",
        "bf",
        "google.com",
        "search",
        59.9,
    )
    assert purchase_row[16:] == ("o-1", "TIMESTAMP WITH TIME ZONE")


def test_a_second_sync_and_a_duplicate_add_nothing(runtime: LocalRuntime, lake: LakeWriter) -> None:
    event = make_event()
    ingest(runtime, event)
    lake.sync()
    ingest(runtime, event)  # sent again: a duplicate, not curated
    assert lake.sync() == 0
    assert _count(runtime) == 1


def test_a_crash_before_the_manifest_commit_leaves_each_event_once(
    runtime: LocalRuntime, lake: LakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a writer that dies after writing its files but before listing them
    ingest(runtime, *[make_event() for _ in range(30)])

    def die(*_args: object) -> None:
        raise StorageError("killed")

    monkeypatch.setattr(LakeManifest, "commit_chunk", die)
    with pytest.raises(StorageError):
        lake.sync()
    monkeypatch.undo()
    assert _count(runtime) == 0  # the unlisted file is invisible
    ingest(runtime, *[make_event() for _ in range(10)])
    # WHEN a new writer (a restart) runs
    restarted = LakeWriter(runtime.db, runtime.segments, lake.root, runtime.clock)
    restarted.sync()
    # THEN every event is there once, and the orphan file is gone
    assert _count(runtime) == 40
    assert len(list(lake.root.rglob("*.parquet"))) == 1


def test_compaction_merges_a_crowded_hour_and_queries_count_each_event_once(
    runtime: LocalRuntime, lake: LakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "COMPACT_AT_FILES", 3)
    monkeypatch.setattr(writer_module, "CHUNK_ROWS", 10)
    # GIVEN 45 events of one hour written 10 at a time (5 files; the hour is still open)
    ingest(runtime, *[make_event() for _ in range(45)])
    lake.sync()
    # THEN the partition was merged; the inputs are retired but kept for queries that listed them
    live = lake.manifest.live()
    assert len(live) == 1
    assert live[0].rows == 45
    assert len(lake.manifest.retired()) == 5
    assert len(list(lake.root.rglob("*.parquet"))) == 6
    assert _count(runtime) == 45
    # AND after the grace period the retired files go
    runtime.clock.now += 11 * 60_000  # type: ignore[attr-defined]
    lake.sync()
    assert len(list(lake.root.rglob("*.parquet"))) == 1
    assert _count(runtime) == 45


def test_a_merge_takes_at_most_merged_rows_and_a_file_that_large_is_never_merged_again(
    runtime: LocalRuntime, lake: LakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "COMPACT_AT_FILES", 3)
    monkeypatch.setattr(writer_module, "CHUNK_ROWS", 10)
    monkeypatch.setattr(writer_module, "MERGED_ROWS", 20)
    # GIVEN 45 events of one hour written 10 at a time (files of 10, 10, 10, 10 and 5 rows)
    ingest(runtime, *[make_event() for _ in range(45)])
    # WHEN the writer runs, then runs again with nothing new
    lake.sync()
    first = sorted(f.rows for f in lake.manifest.live())
    lake.sync()
    second = sorted(f.rows for f in lake.manifest.live())
    # THEN each merge took the two oldest small files (20 rows); the merged files stay as they are,
    # also once the hour is closed, where only small files would be merged
    assert first == [5, 10, 10, 20]
    assert second == [5, 20, 20]
    runtime.clock.now += 3 * 3_600_000  # type: ignore[attr-defined]
    lake.sync()
    assert sorted(f.rows for f in lake.manifest.live()) == [5, 20, 20]
    assert _count(runtime) == 45


def test_an_open_hour_merges_files_of_one_size_tier_so_a_merged_file_is_not_read_again_each_round(
    runtime: LocalRuntime, lake: LakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "COMPACT_AT_FILES", 3)
    monkeypatch.setattr(writer_module, "CHUNK_ROWS", 2)
    # GIVEN rounds of 6 events of one open hour, written 2 at a time (tier of 1 to 3 rows)
    sizes = []
    for _ in range(3):
        ingest(runtime, *[make_event() for _ in range(6)])
        lake.sync()
        sizes.append(sorted(f.rows for f in lake.manifest.live()))
    # THEN each round's three small files are merged into one of the next tier (4 to 31 rows), which
    # waits for two more of its tier instead of being merged with each round's small files
    assert sizes == [[6], [6, 6], [6, 6, 6]]
    # AND the next round (a merge a partition a round) merges those three
    lake.sync()
    assert sorted(f.rows for f in lake.manifest.live()) == [18]
    assert _count(runtime) == 18


def test_rows_curated_while_a_round_writes_wait_for_the_next_round(
    runtime: LocalRuntime, lake: LakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "CHUNK_ROWS", 10)
    ingest(runtime, *[make_event() for _ in range(25)])
    real_write_chunk = LakeWriter._write_chunk
    more = [make_event() for _ in range(10)]

    def write_then_curate_more(self: LakeWriter, up_to: int) -> int | None:
        written = real_write_chunk(self, up_to)
        if more:  # a batch curated while the round writes its first chunk
            ingest(runtime, *more)
            more.clear()
        return written

    monkeypatch.setattr(LakeWriter, "_write_chunk", write_then_curate_more)
    # WHEN a round runs while 10 more events are curated THEN it writes the 25 there at its start
    assert lake.sync() == 25
    # AND the next round the 10
    assert lake.sync() == 10
    assert _count(runtime) == 35


def test_a_closed_hour_is_merged_even_with_few_files(runtime: LocalRuntime, lake: LakeWriter) -> None:
    ingest(runtime, make_event())
    lake.sync()
    ingest(runtime, make_event())
    lake.sync()
    assert len(lake.manifest.live()) == 2  # the hour (05:00) is still open at 06:00
    runtime.clock.now += 2 * 3_600_000  # type: ignore[attr-defined]
    lake.sync()
    assert len(lake.manifest.live()) == 1
    assert _count(runtime) == 2


def test_a_lost_segment_skips_its_events_without_stopping_the_lake(runtime: LocalRuntime, lake: LakeWriter) -> None:
    ingest(runtime, make_event())
    for key in list(runtime.segments.keys("")):
        runtime.segments.delete(key)
    ingest(runtime, make_event())
    assert lake.sync() == 1


def test_a_query_while_compaction_writes_and_a_crash_before_its_swap_see_each_event_once(
    runtime: LocalRuntime, lake: LakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "COMPACT_AT_FILES", 3)
    monkeypatch.setattr(writer_module, "CHUNK_ROWS", 10)
    ingest(runtime, *[make_event() for _ in range(30)])
    seen: list[int] = []
    real_swap = LakeManifest.swap

    def query_then_die(self: LakeManifest, *args: object, **kwargs: object) -> None:
        # GIVEN the merged file written but not yet listed: a query now reads the inputs only
        seen.append(_count(runtime))
        raise StorageError("killed before the swap")

    monkeypatch.setattr(LakeManifest, "swap", query_then_die)
    with pytest.raises(StorageError):
        lake.sync()
    assert seen == [30]
    assert _count(runtime) == 30  # the unlisted merged file is invisible
    # WHEN a restarted writer compacts again THEN the orphan goes and each event is counted once
    monkeypatch.setattr(LakeManifest, "swap", real_swap)
    restarted = LakeWriter(runtime.db, runtime.segments, lake.root, runtime.clock)
    restarted.sync()
    assert len(restarted.manifest.live()) == 1
    assert _count(runtime) == 30
    listed = restarted.manifest.every_path()
    assert {p.relative_to(lake.root).as_posix() for p in lake.root.rglob("*.parquet")} == listed


def _grouped(conn: sqlite3.Connection, cursor: int, limit: int) -> list[tuple[str, int, int, list[int]]]:
    """What `chunk_runs` stands for: the chunk's rows grouped by batch in SQL (as the writer read them before)."""
    rows = conn.execute(
        "SELECT batch_id, MIN(id), MAX(id), group_concat(idx) FROM"
        " (SELECT id, batch_id, idx FROM curated WHERE id > ? ORDER BY id LIMIT ?)"
        " GROUP BY batch_id ORDER BY MIN(id)",
        (cursor, limit),
    ).fetchall()
    return [(b, first, last, sorted(map(int, lines.split(",")))) for b, first, last, lines in rows]


@pytest.mark.parametrize("min_run_rows", [1, 5, 1000])
def test_chunk_runs_finds_the_rows_grouping_by_batch_finds(
    min_run_rows: int, monkeypatch: pytest.MonkeyPatch, runtime: LocalRuntime
) -> None:
    # GIVEN curated rows as batches leave them: runs of consecutive rowids, with gaps (duplicates
    # not stored, erased rows), short runs (requests), and one batch whose rows come in two runs
    monkeypatch.setattr(writer_module, "MIN_RUN_ROWS", min_run_rows)
    monkeypatch.setattr(writer_module, "CHUNK_ROWS", 7)
    batches = [("a", [0, 1, 2, 4, 5, 6, 7, 8]), ("b", [0]), ("c", [1, 3]), ("d", list(range(12))), ("a", [9, 10])]
    with runtime.db.transaction() as conn:
        for batch_id, lines in batches:
            conn.executemany(
                "INSERT INTO curated (event_id, batch_id, event_type, idx, run) VALUES (?, ?, 't', ?, 0)",
                [(f"{batch_id}{line}-{len(lines)}".encode(), batch_id, line) for line in lines],
            )
        conn.execute("DELETE FROM curated WHERE id IN (3, 14, 15)")  # erased
    with runtime.db.reading() as conn:
        last = conn.execute("SELECT MAX(id) FROM curated").fetchone()[0]
        for cursor in range(last + 1):  # every cursor: a chunk may start and end within a batch
            # WHEN the chunk after the cursor is read as runs
            runs = writer_module.chunk_runs(conn, cursor)
            # THEN it holds the same rows, each batch's lines with the rowids they span
            expected = _grouped(conn, cursor, 7)
            found = {(b, line) for b, _, _, lines in runs for line in map(int, lines.split(","))}
            assert found == {(b, line) for b, _, _, lines in expected for line in lines}
            assert min((r[1] for r in runs), default=None) == min((g[1] for g in expected), default=None)
            assert max((r[2] for r in runs), default=None) == max((g[2] for g in expected), default=None)

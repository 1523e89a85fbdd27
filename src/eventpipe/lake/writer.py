"""The lake writer: follows the curated store by rowid and writes its new events as Parquet.

`sync()` takes the curated rows after the cursor, a chunk at a time, writes one file per
partition the chunk touches (`part-<first rowid>-<last rowid>-<random>.parquet`), then lists the files and
moves the cursor in one transaction (see manifest.py). It then merges the small files of busy or
closed hours. `eventpipe up`'s lake process (localrun/lake_process.py) calls it every few seconds and
`eventpipe ingest` at its end; the lock makes concurrent callers take turns.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

import msgspec
import pyarrow as pa

from eventpipe.core.errors import ObjectNotFoundError
from eventpipe.lake.columns import LakeRows, hour_closed
from eventpipe.lake.files import files_on_disk, read_parquet, remove, write_parquet
from eventpipe.lake.manifest import RETIRED_GRACE_MS, LakeFile, LakeManifest, lake_lock
from eventpipe.lake.settings import LakeSettings

if TYPE_CHECKING:
    import mmap
    import sqlite3
    from collections.abc import Callable
    from pathlib import Path

    from eventpipe.adapters.local.bucket import FolderBucket
    from eventpipe.adapters.local.database import Database
    from eventpipe.core.ports import Clock
    from eventpipe.localrun.runtime import LocalRuntime

log = logging.getLogger(__name__)
# Rows per chunk: a chunk writes one file per hour it touches. Built a slice at a time, a chunk holds
# its rows in Arrow only (about 0.7 KB each); 200,000 keep a 100,000-event ingest to one file per
# hour, where 50,000 wrote two that compaction then read and wrote again (a tenth of the lake's CPU).
CHUNK_ROWS = 200_000
COMPACT_AT_FILES = 8  # a partition with this many small live files of one size tier has them merged
# A size tier: files whose rows are within a factor of 8 of each other (1 to 3 rows, 4 to 31, 32 to 255,
# ...). Merging `COMPACT_AT_FILES` files of one tier makes a file of a higher tier, so a row is merged
# once per tier it climbs, about three times from a 5-second round's file to `MERGED_ROWS`. Merging
# the oldest small files whatever their size read the growing merged file again each time: at a
# round of 5,000 rows, 16 µs of compaction per row, three times the writing.
TIER_BITS = 3
# A file of this many rows is not merged again, and a merge takes about this many rows at most: a busy
# hour's compactions then read each row about once (merging the whole hour each time read it again and
# again, and held it all in memory), and a merge's memory stays bounded (Arrow: about 0.7 KB a row).
MERGED_ROWS = 500_000
# Segments of at least this size are mapped, not read (FolderBucket.mapped); a request batch's few
# events are read, which costs less than a map and holds no file descriptor.
MAP_MIN_BYTES = 256 * 1024
MIN_RUN_ROWS = 256  # a chunk's runs of one batch's rows shorter than this: the rest is grouped by SQL
# A run's line numbers (SQLite's group_concat, "0,1,2"), read as a JSON array: a quarter of the time
# of splitting the text and converting each number.
_LINE_NUMBERS = msgspec.json.Decoder(list[int])


def chunk_runs(conn: sqlite3.Connection, cursor: int, up_to: int = 2**62) -> list[tuple[str, int, int, str]]:
    """The next `CHUNK_ROWS` curated rows after `cursor` (up to rowid `up_to`), a line per run of one
    batch's rows: its batch, first and last rowid, and its rows' lines in the segment (`idx`),
    comma-separated.

    A batch's rows are stored by one INSERT, so their rowids follow each other: each run is found
    by three lookups on the rowid, which cost less than grouping the chunk's rows by batch in SQL
    (0.2 µs per event, most of it the sort; a Python row per event cost more than the rest of the
    reading). Where runs are short (request batches of a few events), three lookups a run would
    cost more, and the rest of the chunk is grouped by SQL."""
    end = conn.execute(
        "SELECT MAX(id) FROM (SELECT id FROM curated WHERE id > ? AND id <= ? ORDER BY id LIMIT ?)",
        (cursor, up_to, CHUNK_ROWS),
    ).fetchone()[0]
    runs: list[tuple[str, int, int, str]] = []
    position = cursor
    while end is not None and position < end:
        first, batch_id = conn.execute(
            "SELECT id, batch_id FROM curated WHERE id > ? ORDER BY id LIMIT 1", (position,)
        ).fetchone()
        other = conn.execute(
            "SELECT MIN(id) FROM curated WHERE id > ? AND id <= ? AND batch_id != ?", (first, end, batch_id)
        ).fetchone()[0]
        last, lines, rows = conn.execute(
            "SELECT MAX(id), group_concat(idx), COUNT(*) FROM curated WHERE id >= ? AND id < ?",
            (first, end + 1 if other is None else other),
        ).fetchone()
        runs.append((str(batch_id), int(first), int(last), str(lines)))
        position = int(last)
        if rows < MIN_RUN_ROWS and position < end:
            runs += conn.execute(
                "SELECT batch_id, MIN(id), MAX(id), group_concat(idx) FROM curated WHERE id > ? AND id <= ?"
                " GROUP BY batch_id ORDER BY MIN(id)",
                (position, end),
            ).fetchall()
            break
    return runs


def segment_key(batch_id: str) -> str:
    """Where the curated store keeps a batch's payloads (adapters/local/curated.py)."""
    return f"{batch_id}.ndjson"


class LakeWriter:
    def __init__(self, db: Database, segments: FolderBucket, root: Path, clock: Clock) -> None:
        self._db = db
        self._segments = segments
        self.root = root
        self.clock = clock
        self.manifest = LakeManifest(db)
        self._swept = False

    def sync(self, *, budget_s: float = 30.0, stop: Callable[[], bool] = lambda: False) -> int:
        """Write the curated events not yet in the lake (for at most about `budget_s`), then compact;
        how many events were written. Once `stop()` is true it returns after the chunk it writes."""
        deadline = time.monotonic() + budget_s
        written = 0
        with lake_lock(self.root):
            if not self._swept:
                self.sweep_orphans()
                self._swept = True
            # The rows curated by now: those that land while this round writes wait for the next, so
            # a busy store gives a few large files, not a small one for each batch done meanwhile.
            with self._db.reading() as conn:
                up_to = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM curated").fetchone()[0])
            while time.monotonic() < deadline and not stop():
                count = self._write_chunk(up_to)
                if count is None:
                    break
                written += count
            if not stop():
                self.compact()
                self._drop_retired()
        return written

    def sweep_orphans(self) -> None:
        """Delete files the manifest does not list: writes a crash cut short (call under the lock)."""
        listed = self.manifest.every_path()
        for relative in files_on_disk(self.root):
            if relative not in listed:
                remove(self.root, relative)

    def _write_chunk(self, up_to: int) -> int | None:
        cursor = self.manifest.cursor()
        with self._db.reading() as conn:
            batches = chunk_runs(conn, cursor, up_to)
        if not batches:
            return None
        first, last = min(int(b[1]) for b in batches), max(int(b[2]) for b in batches)
        lake_rows = LakeRows()
        for batch_id, _, _, indexes in batches:
            segment = self._segment(batch_id)
            if segment is not None:  # in the order of their rows
                lake_rows.add_segment(segment, sorted(_LINE_NUMBERS.decode(f"[{indexes}]")), batch_id)
        files = []
        # Rowids can be given again once the largest rows are deleted (erasure, retention): the
        # random part keeps a new file from overwriting an older one of the same rows' numbers.
        token = uuid.uuid4().hex[:8]
        for partition, table in lake_rows.tables().items():
            relative = f"{partition}/part-{first:012d}-{last:012d}-{token}.parquet"
            size = write_parquet(self.root / relative, table)
            files.append(LakeFile(relative, partition, table.num_rows, size))
        self.manifest.commit_chunk(files, last, self.clock.now_ms())
        return len(lake_rows)

    def _segment(self, batch_id: str) -> mmap.mmap | bytes | None:
        """A batch's segment: its curated payloads, a line each, by position (mapped, not copied)."""
        try:
            return self._segments.mapped(segment_key(batch_id), min_bytes=MAP_MIN_BYTES)
        except ObjectNotFoundError:  # retention removed the batch after the rows were read
            return None

    def compact(self, *, max_partitions: int = 8) -> int:
        """Merge small live files (under `MERGED_ROWS` rows): those of a size tier that holds
        `COMPACT_AT_FILES` of a partition's files, and all of an hour closed for an hour; oldest first,
        up to about `MERGED_ROWS` rows a merge. How many merges."""
        now_ms = self.clock.now_ms()
        done = 0
        for partition, count in self.manifest.crowded_partitions(2, below_rows=MERGED_ROWS):
            if done >= max_partitions:
                break
            closed = hour_closed(partition, now_ms)
            if count < COMPACT_AT_FILES and not closed:
                continue
            small = [f for f in self.manifest.live_in(partition) if f.rows < MERGED_ROWS]
            if not closed:  # a closed hour's small files are merged whatever their size, once
                small = crowded_tier(small)
                if not small:
                    continue
            inputs = small[:2]
            for file in small[2:]:
                if sum(f.rows for f in inputs) + file.rows > MERGED_ROWS:
                    break
                inputs.append(file)
            table = pa.concat_tables([read_parquet(self.root / f.path) for f in inputs])
            table = table.sort_by([("occurred_at", "ascending")])
            relative = f"{partition}/part-c{uuid.uuid4().hex}.parquet"
            size = write_parquet(self.root / relative, table)
            self.manifest.swap([f.path for f in inputs], [LakeFile(relative, partition, table.num_rows, size)], now_ms)
            done += 1
        return done

    def _drop_retired(self) -> None:
        expired = self.manifest.retired(before_ms=self.clock.now_ms() - RETIRED_GRACE_MS)
        for relative in expired:
            remove(self.root, relative)
        self.manifest.forget(expired)


def crowded_tier(files: list[LakeFile]) -> list[LakeFile]:
    """The files of the smallest size tier that holds `COMPACT_AT_FILES` of them, in their order; none
    if no tier does."""
    tiers: dict[int, list[LakeFile]] = {}
    for file in files:
        tiers.setdefault(file.rows.bit_length() // TIER_BITS, []).append(file)
    crowded = [tier for tier, members in tiers.items() if len(members) >= COMPACT_AT_FILES]
    return tiers[min(crowded)] if crowded else []


def lake_writer(runtime: LocalRuntime) -> LakeWriter | None:
    """The writer of a local runtime's lake, `<data dir>/lake/`; None when EVENTPIPE_LAKE=off."""
    if not LakeSettings.from_env().enabled:
        return None
    # Arrow's default allocator (mimalloc) hands freed pages back to the kernel within milliseconds,
    # so each chunk's columns fault fresh, zeroed pages in again: a quarter of the writer's CPU went
    # to the kernel. The C library's allocator keeps them for the next chunk.
    pa.set_memory_pool(pa.system_memory_pool())
    return LakeWriter(runtime.db, runtime.segments, runtime.settings.data_dir / "lake", runtime.clock)

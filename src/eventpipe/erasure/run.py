"""`eventpipe erase`: remove every event of a user from every local store, and leave no copy of the
ids in any file of the data directory.

The stores, in order: the raw bucket (raw batches, staged objects, dropped and refused files), the
curated store (segment lines emptied, index rows deleted), the quarantine, the lake (files
rewritten, retired and unlisted files deleted), then SQLite is scrubbed (see `_scrub_sqlite`).
Aggregates stay: counts and sketches hold no ids. The whole run holds the lake's lock, so the lake
writer cannot copy an event between the curated store and the lake while it is being erased, and
the erasure is journalled first, so a crash at any point is finished at the next start.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
import pyarrow.compute as pc

from eventpipe.adapters.local.curated import uuid_key
from eventpipe.adapters.local.dedup_runs import IN_EVERY_RUN
from eventpipe.adapters.local.pseudonym_keys import PseudonymKeys, check_value
from eventpipe.core.errors import ConfigError, StorageError
from eventpipe.core.timeutil import to_iso
from eventpipe.erasure import rewrite
from eventpipe.erasure.journal import ErasureJournal, PendingErasure
from eventpipe.erasure.lake_rows import matching_rows
from eventpipe.erasure.target import ErasureTarget
from eventpipe.lake.files import files_on_disk, read_parquet, remove, write_parquet
from eventpipe.lake.manifest import LakeFile, LakeManifest, lake_lock

if TYPE_CHECKING:
    from pathlib import Path

    from eventpipe.localrun.runtime import LocalRuntime

log = logging.getLogger(__name__)
RAW_PREFIXES = ("raw/", "staged/", "incoming/", "processed/", "rejected/")
_CHECKPOINT_TRIES = 50


@dataclass(frozen=True, slots=True)
class ErasureResult:
    events_erased: int
    files_rewritten: int

    def as_dict(self) -> dict[str, int]:
        return {"events_erased": self.events_erased, "files_rewritten": self.files_rewritten}


def journal_of(runtime: LocalRuntime) -> ErasureJournal:
    return ErasureJournal(runtime.settings.data_dir / "erasures")


def erase_user(runtime: LocalRuntime, user_ids: list[str], anonymous_ids: list[str]) -> ErasureResult:
    """Erase the events of these ids; an erasure a crash left is finished first."""
    check_pseudonym_key(runtime)
    resume_erasures(runtime)
    journal = journal_of(runtime)
    return _run(runtime, journal, journal.begin(user_ids, anonymous_ids, runtime.clock.now_ms()))


def resume_erasures(runtime: LocalRuntime) -> int:
    """Finish the erasures a crash interrupted; how many. Call before processing anything."""
    journal = journal_of(runtime)
    if not journal.has_pending():
        return 0
    check_pseudonym_key(runtime)
    resumed = 0
    for pending in journal.abandoned():
        log.warning("finishing an erasure a crash interrupted (started %s)", to_iso(pending.started_ms))
        _run(runtime, journal, pending)
        resumed += 1
    return resumed


def check_pseudonym_key(runtime: LocalRuntime) -> None:
    """Refuse to erase where events were pseudonymised with a key this run does not have: it would
    match the ids in clear only, and leave the user's pseudonymised events behind."""
    noted = PseudonymKeys(runtime.db).check_values()
    if not noted:
        return
    key = runtime.settings.enrichment.pseudonym_key
    if key is None:
        raise ConfigError(
            "events here were pseudonymised: set EVENTPIPE_PSEUDONYM_KEY to the key they were written with,"
            " or the erasure would miss the user's pseudonymised ids"
        )
    if len(noted) > 1:
        raise ConfigError(
            f"events here were pseudonymised with {len(noted)} different keys, and an erasure matches one"
            " key's pseudonyms: it would miss the others"
        )
    if check_value(key) not in noted:
        raise ConfigError(
            "events here were pseudonymised with another key than EVENTPIPE_PSEUDONYM_KEY: set the key they"
            " were written with, or the erasure would miss the user's pseudonymised ids"
        )


def _run(runtime: LocalRuntime, journal: ErasureJournal, pending: PendingErasure) -> ErasureResult:
    target = ErasureTarget.of(pending.user_ids, pending.anonymous_ids, runtime.settings.enrichment.pseudonym_key)
    try:
        with lake_lock(runtime.settings.data_dir / "lake"):
            files = _raw_bucket(runtime, target)
            segments, erased_ids = _segments(runtime, target)
            events = _curated_and_quarantine(runtime, target, erased_ids)
            files += segments + _lake(runtime, target)
            _scrub_sqlite(runtime, target)
    except BaseException:
        pending.release()  # the entry stays: the next start finishes it
        raise
    result = ErasureResult(events, files)
    journal.finish(pending, events_erased=events, files_rewritten=files, now_ms=runtime.clock.now_ms())
    log.info("erasure finished: %d events erased, %d files rewritten", events, files)
    return result


def _raw_bucket(runtime: LocalRuntime, target: ErasureTarget) -> int:
    rewritten = 0
    max_bytes = runtime.settings.limits.max_file_bytes
    for prefix in RAW_PREFIXES:
        for key in list(runtime.bucket.keys(prefix)):
            data = runtime.bucket.get(key)
            if prefix == "raw/":
                new = rewrite.raw_batch(data, target)
            elif prefix == "staged/":
                new = rewrite.staged(data, target)
            else:
                new = rewrite.dropped_file(data, target, max_bytes=max_bytes)
            if new is not None:
                runtime.bucket.put(key, new)
                rewritten += 1
    return rewritten


def _segments(runtime: LocalRuntime, target: ErasureTarget) -> tuple[int, set[str]]:
    """Empty the matching lines of the curated segments; the event ids they held."""
    rewritten, event_ids = 0, set()
    for key in list(runtime.segments.keys("")):
        found = rewrite.blank_lines(runtime.segments.get(key), target)
        if found is None:
            continue
        data, lines = found
        runtime.segments.put(key, data)
        rewritten += 1
        for line in lines:
            try:
                event_ids.add(str(orjson.loads(line)["event_id"]))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
    return rewritten, event_ids


def _curated_and_quarantine(runtime: LocalRuntime, target: ErasureTarget, event_ids: set[str]) -> int:
    """Delete the curated index rows and the quarantine records, zeroing the freed bytes."""
    manifest = LakeManifest(runtime.db)
    with runtime.db.transaction() as conn:
        conn.execute("PRAGMA secure_delete = ON")
        cursor = conn.executemany(
            f"DELETE FROM curated WHERE {IN_EVERY_RUN} AND event_id = ?", [(uuid_key(e),) for e in event_ids]
        )
        erased = max(cursor.rowcount, 0)
        manifest.lower_cursor_to_last_row(conn)
        records: set[int] = set()
        # The ids as JSON strings and as numbers, and a backslash: an escape may spell an id otherwise.
        for needle in (*target.needles, *target.number_forms, b"\\"):
            text = needle.decode()
            for row_id, raw in conn.execute("SELECT id, raw FROM quarantine WHERE instr(raw, ?) > 0", (text,)):
                if target.matches_line(str(raw)):
                    records.add(int(row_id))
        conn.executemany("DELETE FROM quarantine WHERE id = ?", [(i,) for i in records])
    return erased + len(records)


def _lake(runtime: LocalRuntime, target: ErasureTarget) -> int:
    """Rewrite the live lake files that hold the user's events; delete retired and unlisted ones."""
    root = runtime.settings.data_dir / "lake"
    manifest = LakeManifest(runtime.db)
    listed = manifest.every_path()
    for relative in files_on_disk(root):  # a crash's leftovers may hold the user's events
        if relative not in listed:
            remove(root, relative)
    retired = manifest.retired()
    for relative in retired:  # copies of live files, which are rewritten below
        remove(root, relative)
    manifest.forget(retired)
    rewritten = 0
    now_ms = runtime.clock.now_ms()
    for file in manifest.live():
        if not (root / file.path).exists():  # listed but gone (deleted by hand): it holds nothing now
            manifest.forget([file.path])
            continue
        table = read_parquet(root / file.path)
        mask = matching_rows(table, target)
        if not pc.any(mask).as_py():
            continue
        kept = table.filter(pc.invert(mask))
        if kept.num_rows == 0:
            remove(root, file.path)
            manifest.forget([file.path])
        else:
            size = write_parquet(root / file.path, kept)
            manifest.replace(LakeFile(file.path, file.partition, kept.num_rows, size), now_ms)
        rewritten += 1
    return rewritten


def _scrub_sqlite(runtime: LocalRuntime, target: ErasureTarget) -> None:
    """Leave no copy of the ids in the database's files. Deleted rows were zeroed (secure_delete);
    the WAL still holds the pages as they were, so it is checkpointed and truncated. Pages freed
    before, without secure_delete (a quarantine record released by a replay, say), may still hold
    an id: the file is searched, and rebuilt (VACUUM) if it does."""
    db_path = runtime.settings.data_dir / "eventpipe.db"
    _checkpoint(runtime)
    if _file_holds(db_path, target.escaped_forms):
        with runtime.db.reading() as conn:
            conn.execute("VACUUM")
        _checkpoint(runtime)
    with runtime.db.reading() as conn:
        conn.execute("PRAGMA secure_delete = OFF")


def _checkpoint(runtime: LocalRuntime) -> None:
    for _ in range(_CHECKPOINT_TRIES):  # a reader in another process can hold back a full checkpoint
        with runtime.db.reading() as conn:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return
        time.sleep(0.1)
    raise StorageError("the database is busy: the erasure could not truncate its log; run `eventpipe erase` again")


def _file_holds(path: Path, needles: tuple[bytes, ...]) -> bool:
    """True if the file holds any of these forms of the ids (without the quotes of JSON text)."""
    if not needles:
        return False
    overlap = max(len(n) for n in needles)
    try:
        with path.open("rb") as handle:
            tail = b""
            while chunk := handle.read(8 * 1024 * 1024):
                window = tail + chunk
                if any(n in window for n in needles):
                    return True
                tail = window[-overlap:]
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc
    return False


__all__ = ["ErasureResult", "erase_user", "resume_erasures"]

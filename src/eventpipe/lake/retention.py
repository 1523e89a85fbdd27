"""Retention on one machine: data older than `EVENTPIPE_RETENTION_DAYS` leaves the raw bucket, the
quarantine, the batch records and the curated store; lake days older than
`EVENTPIPE_LAKE_RETENTION_DAYS` leave the lake. Aggregates stay.

Age is the batch's receipt for the hot stores (a quarantine record ages with the batch that first
refused it, a dropped file with its modification time) and the event time (the `dt` partition) for
the lake. Only finished (done) batches expire: a pending or failed one still needs its raw batch;
and with the lake on, only batches whose events the lake already holds.

The deduplication window follows: an event is recognised as a duplicate while the curated row of
its first copy exists, that is for `EVENTPIPE_RETENTION_DAYS` after the batch that curated it was
received. Sent again later, it is curated again.

It runs when a process that writes starts (`eventpipe up`'s lake process, `ingest`, `replay`) and
then daily: the time of the last run is kept in the database.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from eventpipe.core.errors import StorageError
from eventpipe.lake.files import remove
from eventpipe.lake.manifest import LakeManifest, lake_lock

if TYPE_CHECKING:
    from eventpipe.lake.settings import LakeSettings
    from eventpipe.localrun.runtime import LocalRuntime

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
_LAST_RUN = "retention_ms"
_DROPPED_PREFIXES = ("processed/", "rejected/")


@dataclass(frozen=True, slots=True)
class RetentionResult:
    batches: int = 0
    curated: int = 0
    quarantined: int = 0
    dropped_files: int = 0
    lake_files: int = 0


def apply_retention(runtime: LocalRuntime, settings: LakeSettings, *, force: bool = False) -> RetentionResult | None:
    """Drop expired data, unless retention is not configured or ran less than a day ago."""
    if settings.retention_days is None and settings.lake_retention_days is None:
        return None
    manifest = LakeManifest(runtime.db)
    now_ms = runtime.clock.now_ms()
    last = manifest.state(_LAST_RUN)
    if not force and last is not None and 0 <= now_ms - last < DAY_MS:
        return None
    with lake_lock(runtime.settings.data_dir / "lake"):
        result = RetentionResult()
        if settings.retention_days is not None:
            cutoff_ms = now_ms - settings.retention_days * DAY_MS
            result = _hot_stores(runtime, manifest, cutoff_ms, lake=settings.enabled)
        if settings.lake_retention_days is not None:
            first_kept = datetime.fromtimestamp((now_ms - settings.lake_retention_days * DAY_MS) / 1000, UTC)
            lake_files = _lake(runtime, manifest, f"{first_kept:%Y-%m-%d}")
            result = replace(result, lake_files=lake_files)
        manifest.set_state(_LAST_RUN, now_ms)
    log.info("retention: %s", result)
    return result


def _hot_stores(runtime: LocalRuntime, manifest: LakeManifest, cutoff_ms: int, *, lake: bool) -> RetentionResult:
    with runtime.db.reading() as conn:
        expired = conn.execute(
            "SELECT batch_id, raw_key FROM batches WHERE status IN ('done', 'grouped') AND received_at_ms < ?",
            (cutoff_ms,),
        ).fetchall()
        if lake:  # a batch expires once the lake holds its events: they must reach it first
            waiting = {
                str(row[0])
                for row in conn.execute("SELECT DISTINCT batch_id FROM curated WHERE id > ?", (manifest.cursor(),))
            }
            expired = [row for row in expired if str(row[0]) not in waiting]
    # Files first: a crash before the rows go leaves rows whose files are gone, which the next run
    # deletes; the other order would leave files no row names any more.
    for batch_id, raw_key in expired:
        runtime.bucket.delete(str(raw_key))
        runtime.segments.delete(f"{batch_id}.ndjson")
    dropped = _dropped_files(runtime, cutoff_ms)
    with runtime.db.transaction() as conn:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS expired_batches (batch_id TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM temp.expired_batches")
        conn.executemany("INSERT INTO temp.expired_batches VALUES (?)", [(str(b),) for b, _ in expired])
        where = "WHERE batch_id IN (SELECT batch_id FROM temp.expired_batches)"
        # Each batch's rows by its rowid range: the work follows what expires, not the table's size.
        ranges = conn.execute(f"SELECT first_id, last_id, batch_id FROM curated_rowids {where}").fetchall()
        curated = conn.executemany("DELETE FROM curated WHERE id BETWEEN ? AND ? AND batch_id = ?", ranges).rowcount
        conn.execute(f"DELETE FROM curated_rowids {where}")
        conn.execute(f"DELETE FROM curated_batches {where}")  # the runs it stored ids in: it has none now
        quarantined = conn.execute(f"DELETE FROM quarantine {where}").rowcount
        conn.execute(f"DELETE FROM applied_batches {where}")
        batches = conn.execute(f"DELETE FROM batches {where}").rowcount
        conn.execute("DELETE FROM temp.expired_batches")
        manifest.lower_cursor_to_last_row(conn)
    return RetentionResult(batches, curated, quarantined, dropped)


def _dropped_files(runtime: LocalRuntime, cutoff_ms: int) -> int:
    removed = 0
    for prefix in _DROPPED_PREFIXES:
        for key in list(runtime.bucket.keys(prefix)):
            try:
                modified_ms = os.stat(runtime.bucket.root / key).st_mtime_ns // 1_000_000
            except OSError as exc:
                raise StorageError(f"cannot read the age of {key}: {exc}") from exc
            if modified_ms < cutoff_ms:
                runtime.bucket.delete(key)
                removed += 1
    return removed


def _lake(runtime: LocalRuntime, manifest: LakeManifest, first_kept_day: str) -> int:
    root = runtime.settings.data_dir / "lake"
    expired = manifest.in_partitions_before(first_kept_day)
    for relative in expired:
        remove(root, relative)
    manifest.forget(expired)
    folders = {(root / p).parent for p in expired} | {(root / p).parent.parent for p in expired}
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):  # hours before their day
        try:
            folder.rmdir()  # only when empty
        except OSError:
            continue
    return len(expired)

"""The one SQLite database (WAL) behind the local stores: connection, settings and tables."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

from eventpipe.core.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# 2: per-minute session sketches replace per-session funnel rows; dirty hours. 3: segments. 4: batches
# grouped by micro-batching (group_id, first_index). 5: curated ids indexed per run (dedup_runs.py).
# 6: sketch deltas (adapters/local/insights.py). 7: the runs each batch stored curated ids in.
# 8: each batch's curated rowids (curated_rowids).
SCHEMA_VERSION = 8
CURATED_SCHEMA = """
-- The curated events' index; their payloads are in segment files (adapters/local/curated.py).
-- Rows are appended in rowid order. The 16-byte ids are indexed per run (a day's ids, or fewer):
-- a new id lands in the small current run, not anywhere in the whole store (dedup_runs.py).
CREATE TABLE IF NOT EXISTS curated (
    id INTEGER PRIMARY KEY,
    event_id BLOB NOT NULL,
    batch_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    idx INTEGER NOT NULL,
    run INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS curated_by_run ON curated (run, event_id);
-- One row per run: how many ids it was given, and a random token naming this run of this
-- database (a persisted filter says which runs it holds by these tokens).
CREATE TABLE IF NOT EXISTS curated_runs (run INTEGER PRIMARY KEY, ids INTEGER NOT NULL, token TEXT NOT NULL);
-- Each run a batch stored ids in, written with them: an id found in a closed run where this batch
-- stored nothing is another batch's, so finding it takes the index alone, not its row (dedup_runs.py).
CREATE TABLE IF NOT EXISTS curated_batches (batch_id TEXT NOT NULL, run INTEGER NOT NULL, PRIMARY KEY (batch_id, run))
    WITHOUT ROWID;
-- The rowids of each batch's rows, first to last (a batch's rows are inserted together): retention
-- deletes an expired batch's rows by them, not by a scan of the whole table (lake/retention.py).
CREATE TABLE IF NOT EXISTS curated_rowids (
    batch_id TEXT PRIMARY KEY,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;
"""
SCHEMA = (
    CURATED_SCHEMA
    + """
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    event_id TEXT,
    stage TEXT NOT NULL,
    reasons TEXT NOT NULL,
    raw TEXT NOT NULL,
    UNIQUE (batch_id, idx)
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    raw_key TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    received INTEGER NOT NULL,
    status TEXT NOT NULL,
    curated INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    rejected_by_code TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    group_id TEXT,
    first_index INTEGER NOT NULL DEFAULT 0
);
-- Only the batches still to run: done and grouped batches (most of them) stay out of it.
CREATE INDEX IF NOT EXISTS batches_unfinished ON batches (status) WHERE status IN ('pending', 'failed');
-- Per minute and segment (core/segments.py: an app, bots; '' for no app and people).
CREATE TABLE IF NOT EXISTS minute_counts (
    minute INTEGER NOT NULL,
    segment TEXT NOT NULL DEFAULT '',
    metric TEXT NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (minute, segment, metric, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS minute_sketches (
    minute INTEGER NOT NULL,
    segment TEXT NOT NULL DEFAULT '',
    users BLOB NOT NULL,
    PRIMARY KEY (minute, segment)
) WITHOUT ROWID;
-- Per minute and funnel step, a Theta sketch of the sessions that reached it (core/funnel.py).
CREATE TABLE IF NOT EXISTS minute_sessions (
    minute INTEGER NOT NULL,
    segment TEXT NOT NULL DEFAULT '',
    step INTEGER NOT NULL,
    sketch BLOB NOT NULL,
    PRIMARY KEY (minute, segment, step)
) WITHOUT ROWID;
-- Hours whose aggregates changed since the export last wrote them; `version` counts the changes,
-- so that the export forgets an hour only if nothing changed it meanwhile.
-- Each batch's own small sketches, per minute, segment and step (-1: users), until a fold unites them
-- into minute_sketches and minute_sessions (adapters/local/insights.py); reads unite both.
CREATE TABLE IF NOT EXISTS sketch_deltas (
    id INTEGER PRIMARY KEY,
    minute INTEGER NOT NULL,
    segment TEXT NOT NULL,
    step INTEGER NOT NULL,
    sketch BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dirty_hours (hour INTEGER PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applied_batches (batch_id TEXT PRIMARY KEY) WITHOUT ROWID;
"""
)
# Schema 4 to 5: the table is rebuilt without its unique index on the id alone; every row becomes
# run 0 (one closed run) and the new index is built once, sorted. Once per data directory: 33 s for
# ten million rows (13 s of CPU), then 18 s to build the filter of that run at the first write.
MIGRATE_4_TO_5 = """
ALTER TABLE curated RENAME TO curated_v4;
CREATE TABLE curated (
    id INTEGER PRIMARY KEY,
    event_id BLOB NOT NULL,
    batch_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    idx INTEGER NOT NULL,
    run INTEGER NOT NULL
);
INSERT INTO curated (id, event_id, batch_id, event_type, idx, run)
    SELECT id, event_id, batch_id, event_type, idx, 0 FROM curated_v4 ORDER BY id;
DROP TABLE curated_v4;
CREATE UNIQUE INDEX curated_by_run ON curated (run, event_id);
CREATE TABLE curated_runs (run INTEGER PRIMARY KEY, ids INTEGER NOT NULL, token TEXT NOT NULL);
INSERT INTO curated_runs (run, ids, token)
    SELECT 0, COUNT(*), lower(hex(randomblob(8))) FROM curated HAVING COUNT(*) > 0;
"""
# Schema 5 to 6: a new table; no data moves (a minute's stored sketches stay where they are).
MIGRATE_5_TO_6 = """
CREATE TABLE sketch_deltas (
    id INTEGER PRIMARY KEY,
    minute INTEGER NOT NULL,
    segment TEXT NOT NULL,
    step INTEGER NOT NULL,
    sketch BLOB NOT NULL
);
"""

# Schema 6 to 7: the runs of each batch, from its rows (once: 2.5 s for ten million rows, its sort on disk).
MIGRATE_6_TO_7 = """
CREATE TABLE IF NOT EXISTS curated_batches (batch_id TEXT NOT NULL, run INTEGER NOT NULL, PRIMARY KEY (batch_id, run))
    WITHOUT ROWID;
INSERT OR IGNORE INTO curated_batches (batch_id, run) SELECT DISTINCT batch_id, run FROM curated;
"""
# Schema 7 to 8: each batch's rowid range, from the rows there are: one sort of the table, once per
# data directory (a batch whose rows are not all together gets the range around them all).
MIGRATE_7_TO_8 = """
CREATE TABLE IF NOT EXISTS curated_rowids (
    batch_id TEXT PRIMARY KEY,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR REPLACE INTO curated_rowids (batch_id, first_id, last_id)
    SELECT batch_id, MIN(id), MAX(id) FROM curated GROUP BY batch_id;
"""

# Each schema's step to the next, by the version it starts from (4, the oldest upgraded, on): a store
# at version v runs the steps from v on, one after the other.
MIGRATIONS = {4: MIGRATE_4_TO_5, 5: MIGRATE_5_TO_6, 6: MIGRATE_6_TO_7, 7: MIGRATE_7_TO_8}


class Database:
    """One connection shared by the stores; a lock serialises transactions across threads.

    `synchronous=NORMAL` in WAL mode survives a killed process (the raw bucket, fsynced, is the
    acknowledgement). The page cache is bounded, so memory stays flat however large the store
    grows; once the random event-id index outgrows it, each batch reads index pages from the OS
    (EVENTPIPE_SQLITE_CACHE_MIB trades memory for speed on large stores).
    """

    def __init__(self, path: Path, *, cache_mib: int = 4) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            for pragma in (
                "journal_mode=WAL",
                "synchronous=NORMAL",
                f"cache_size=-{cache_mib * 1024}",
                "temp_store=MEMORY",
                "busy_timeout=30000",
                "wal_autocheckpoint=50000",  # fewer checkpoints: a page dirtied by many batches is copied once
            ):
                self._conn.execute(f"PRAGMA {pragma}")
            self._create_or_check_schema(path)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the database {path}: {exc}") from exc
        self._lock = threading.RLock()
        self._depth = 0  # transactions open in the thread holding the lock

    def _create_or_check_schema(self, path: Path) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        is_new = self._conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
        if is_new:
            self._conn.executescript(SCHEMA)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version in MIGRATIONS:
            self._migrate("".join(script for start, script in MIGRATIONS.items() if start >= version))
        elif version != SCHEMA_VERSION:
            raise StorageError(
                f"{path} was made by another version of eventpipe (schema {version}, this one reads"
                f" {SCHEMA_VERSION}); move it away or set EVENTPIPE_DATA_DIR to a new folder"
            )

    def _migrate(self, script: str) -> None:
        """Run `script` and set the current schema version, in one transaction (all or nothing).

        Its sorts (a new index) spill to temporary files, not memory: memory stays flat however large."""
        self._conn.execute("PRAGMA temp_store=FILE")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";\n"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        finally:
            self._conn.execute("PRAGMA temp_store=MEMORY")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE); sqlite3 errors become `StorageError`.

        Transactions nest: one opened inside another (in the same thread) is a savepoint, undone
        alone if it fails, committed with the outermost one. So a store's write is atomic by
        itself, and a caller can still make several stores' writes, or several batches, one commit.
        """
        with self._lock:
            depth = self._depth
            savepoint = f"sp{depth}"
            try:
                self._conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
                self._depth += 1
                try:
                    yield self._conn
                    self._depth -= 1
                    self._conn.execute("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
                except BaseException:
                    self._depth = depth
                    if depth == 0:
                        if self._conn.in_transaction:  # also when COMMIT itself failed
                            self._conn.execute("ROLLBACK")
                    elif self._conn.in_transaction:
                        self._conn.execute(f"ROLLBACK TO {savepoint}")
                        self._conn.execute(f"RELEASE {savepoint}")
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {exc}") from exc

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

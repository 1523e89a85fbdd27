"""The lake's manifest and cursor, in the local SQLite database, and the lake's file lock.

The manifest lists the lake's files; a file on disk that it does not list is invisible (a write
that a crash cut short) and is swept. A query reads the live files only. Compaction retires the
files it merged in the same transaction that adds its output, so a query sees each event once,
and deletes them only after `RETIRED_GRACE_MS`, so a query that listed them can still read them.

The cursor is the last curated row (SQLite rowid) the lake holds; advancing it and listing the
files that hold those rows is one transaction, which makes the lake exactly-once: a crash before
it leaves unlisted files (swept) and an unmoved cursor (the rows are written again).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from eventpipe.adapters.local.database import Database

RETIRED_GRACE_MS = 10 * 60_000
_TABLES = """
CREATE TABLE IF NOT EXISTS lake_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lake_files (
    path TEXT PRIMARY KEY,          -- relative to the lake folder
    partition TEXT NOT NULL,        -- dt=YYYY-MM-DD/hour=HH
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    written_ms INTEGER NOT NULL,
    retired_ms INTEGER              -- NULL while live
);
CREATE INDEX IF NOT EXISTS lake_files_partition ON lake_files (partition);
"""


@dataclass(frozen=True, slots=True)
class LakeFile:
    path: str
    partition: str
    rows: int
    bytes: int


class LakeManifest:
    def __init__(self, db: Database) -> None:
        self._db = db
        with db.transaction() as conn:
            for statement in _TABLES.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def cursor(self) -> int:
        with self._db.reading() as conn:
            return _cursor(conn)

    def state(self, name: str) -> int | None:
        with self._db.reading() as conn:
            row = conn.execute("SELECT value FROM lake_state WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else None

    def set_state(self, name: str, value: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO lake_state (name, value) VALUES (?, ?)", (name, value))

    def commit_chunk(self, files: Sequence[LakeFile], cursor: int, now_ms: int) -> None:
        """List a chunk's files and move the cursor past its rows, at once."""
        with self._db.transaction() as conn:
            _add(conn, files, now_ms)
            conn.execute("INSERT OR REPLACE INTO lake_state (name, value) VALUES ('cursor', ?)", (cursor,))

    def swap(self, retired: Sequence[str], added: Sequence[LakeFile], now_ms: int) -> None:
        """Retire `retired` and list `added` in one transaction (compaction, erasure)."""
        with self._db.transaction() as conn:
            conn.executemany(
                "UPDATE lake_files SET retired_ms = ? WHERE path = ?", [(now_ms, path) for path in retired]
            )
            _add(conn, added, now_ms)

    def replace(self, file: LakeFile, now_ms: int) -> None:
        """A file rewritten in place (erasure): its new counts."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE lake_files SET rows = ?, bytes = ?, written_ms = ? WHERE path = ?",
                (file.rows, file.bytes, now_ms, file.path),
            )

    def forget(self, paths: Sequence[str]) -> None:
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM lake_files WHERE path = ?", [(path,) for path in paths])

    def lower_cursor_to_last_row(self, conn: sqlite3.Connection) -> None:
        """After curated rows are deleted: SQLite gives a new row the largest rowid plus one, so once
        the largest is deleted a new row may take a rowid at or below the cursor. The rows left at
        or below the largest rowid are all in the lake already; call inside the deleting transaction."""
        conn.execute(
            "UPDATE lake_state SET value = MIN(value, (SELECT COALESCE(MAX(id), 0) FROM curated)) WHERE name = 'cursor'"
        )

    def live(self) -> list[LakeFile]:
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT path, partition, rows, bytes FROM lake_files WHERE retired_ms IS NULL ORDER BY path"
            ).fetchall()
        return [LakeFile(*row) for row in rows]

    def every_path(self) -> set[str]:
        with self._db.reading() as conn:
            return {str(row[0]) for row in conn.execute("SELECT path FROM lake_files")}

    def in_partitions_before(self, day: str) -> list[str]:
        """Every listed file (live or retired) of the days before `day` (`YYYY-MM-DD`)."""
        with self._db.reading() as conn:
            rows = conn.execute("SELECT path FROM lake_files WHERE partition < ?", (f"dt={day}",)).fetchall()
        return [str(row[0]) for row in rows]

    def retired(self, before_ms: int | None = None) -> list[str]:
        """Retired files (all, or those retired before `before_ms`)."""
        limit = before_ms if before_ms is not None else 2**62
        with self._db.reading() as conn:
            rows = conn.execute("SELECT path FROM lake_files WHERE retired_ms < ?", (limit,)).fetchall()
        return [str(row[0]) for row in rows]

    def crowded_partitions(self, min_files: int, *, below_rows: int = 2**62) -> list[tuple[str, int]]:
        """Partitions with at least `min_files` live files of fewer than `below_rows` rows, and how
        many, most crowded first."""
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT partition, COUNT(*) AS n FROM lake_files WHERE retired_ms IS NULL AND rows < ?"
                " GROUP BY partition HAVING n >= ? ORDER BY n DESC, partition",
                (below_rows, min_files),
            ).fetchall()
        return [(str(p), int(n)) for p, n in rows]

    def live_in(self, partition: str) -> list[LakeFile]:
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT path, partition, rows, bytes FROM lake_files WHERE retired_ms IS NULL AND partition = ?"
                " ORDER BY path",
                (partition,),
            ).fetchall()
        return [LakeFile(*row) for row in rows]


def _cursor(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM lake_state WHERE name = 'cursor'").fetchone()
    return int(row[0]) if row else 0


def _add(conn: sqlite3.Connection, files: Sequence[LakeFile], now_ms: int) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO lake_files (path, partition, rows, bytes, written_ms, retired_ms)"
        " VALUES (?, ?, ?, ?, ?, NULL)",
        [(f.path, f.partition, f.rows, f.bytes, now_ms) for f in files],
    )


@contextmanager
def lake_lock(root: Path) -> Iterator[None]:
    """One writer of the lake's files at a time, across processes (the worker of `eventpipe up`,
    `eventpipe ingest`, `eventpipe erase`); the kernel releases it when its holder dies, kill -9 too."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock

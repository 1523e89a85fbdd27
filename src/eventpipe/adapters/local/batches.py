"""Batch records in SQLite: pending until the workflow marks them done or failed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.errors import StorageError
from eventpipe.core.model import BatchRecord, BatchStatus

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from eventpipe.adapters.local.database import Database

_COLUMNS = (
    "batch_id, raw_key, source, received_at_ms, received, status, curated, duplicates, rejected_by_code, error,"
    " group_id, first_index"
)
_UNFINISHED = "status IN ('pending', 'failed')"  # the partial index's condition, so that queries use it


def _record(row: tuple[Any, ...]) -> BatchRecord:
    batch_id, raw_key, source, received_at_ms, received, status, curated, duplicates, rejected, error = row[:10]
    group_id, first_index = row[10:]
    by_code: dict[str, int] = orjson.loads(str(rejected))
    return BatchRecord(
        batch_id=str(batch_id),
        raw_key=str(raw_key),
        source=str(source),
        received_at_ms=int(received_at_ms),
        received=int(received),
        status=BatchStatus(status),
        curated=int(curated),
        duplicates=int(duplicates),
        rejected=sum(by_code.values()),
        rejected_by_code=by_code,
        error=None if error is None else str(error),
        group_id=None if group_id is None else str(group_id),
        first_index=int(first_index),
    )


class SqliteBatchStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, record: BatchRecord) -> bool:
        with self._db.transaction() as conn:
            return self._insert(conn, record)

    @staticmethod
    def _insert(conn: sqlite3.Connection, record: BatchRecord) -> bool:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO batches (batch_id, raw_key, source, received_at_ms, received, status)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.batch_id,
                record.raw_key,
                record.source,
                record.received_at_ms,
                record.received,
                str(record.status),
            ),
        )
        return cursor.rowcount == 1

    def get(self, batch_id: str) -> BatchRecord | None:
        with self._db.reading() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        return None if row is None else _record(row)

    def mark_done(self, batch_id: str, curated: int, duplicates: int, rejected: dict[str, int]) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE batches SET status = 'done', curated = ?, duplicates = ?, rejected_by_code = ?,"
                " error = NULL WHERE batch_id = ?",
                (curated, duplicates, orjson.dumps(rejected).decode(), batch_id),
            )

    def mark_failed(self, batch_id: str, error: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE batches SET status = 'failed', error = ? WHERE batch_id = ? AND status != 'done'",
                (error, batch_id),
            )

    def group(self, record: BatchRecord, members: Sequence[tuple[str, int]]) -> None:
        """Record a group batch (pending) and mark its members grouped into it, in one transaction:
        a crash leaves either the pending members or the pending group, never both to run.

        Raises `StorageError` (and changes nothing) when a member is no longer pending.
        """
        with self._db.transaction() as conn:
            self._insert(conn, record)
            for batch_id, first_index in members:
                cursor = conn.execute(
                    "UPDATE batches SET status = 'grouped', group_id = ?, first_index = ?"
                    " WHERE batch_id = ? AND status = 'pending'",
                    (record.batch_id, first_index, batch_id),
                )
                if cursor.rowcount != 1:
                    raise StorageError(f"batch {batch_id} is not pending: not grouped into {record.batch_id}")

    def record_group(self, record: BatchRecord, members: Sequence[BatchRecord]) -> None:
        """Record a group batch (pending) and its member requests (grouped into it), in one transaction:
        the requests come from the request log, where nothing else records them (localrun/logged_requests.py)."""
        with self._db.transaction() as conn:
            self._insert(conn, record)
            conn.executemany(
                "INSERT OR IGNORE INTO batches (batch_id, raw_key, source, received_at_ms, received, status,"
                " group_id, first_index) VALUES (?, ?, ?, ?, ?, 'grouped', ?, ?)",
                [
                    (m.batch_id, m.raw_key, m.source, m.received_at_ms, m.received, record.batch_id, m.first_index)
                    for m in members
                ],
            )

    def ids_starting(self, prefix: str) -> set[str]:
        """Every recorded batch id that starts with `prefix` (not empty): one range of the key's index."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        with self._db.reading() as conn:
            rows = conn.execute("SELECT batch_id FROM batches WHERE batch_id >= ? AND batch_id < ?", (prefix, end))
            return {str(row[0]) for row in rows}

    def known(self, batch_ids: Sequence[str]) -> set[str]:
        """Which of these batch ids are recorded."""
        found: set[str] = set()
        with self._db.reading() as conn:
            for start in range(0, len(batch_ids), 500):  # under SQLite's bound-parameter limit
                chunk = list(batch_ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT batch_id FROM batches WHERE batch_id IN ({marks})", chunk)
                found.update(str(row[0]) for row in rows)
        return found

    def pending(self, limit: int) -> list[BatchRecord]:
        """The oldest batches waiting for their workflow: the local runtime's work queue."""
        with self._db.reading() as conn:
            rows = conn.execute(  # the index's own condition lets SQLite use it
                f"SELECT {_COLUMNS} FROM batches WHERE {_UNFINISHED} AND status = 'pending'"
                " ORDER BY received_at_ms LIMIT ?",
                (limit,),
            ).fetchall()
        return [_record(row) for row in rows]

    def unfinished_counts(self) -> dict[str, int]:
        """How many batches are pending and failed."""
        with self._db.reading() as conn:
            rows = conn.execute(f"SELECT status, COUNT(*) FROM batches WHERE {_UNFINISHED} GROUP BY status")
            counts = {"pending": 0, "failed": 0}
            counts.update({str(status): int(n) for status, n in rows})
        return counts

    def reopen(self, batch_id: str) -> None:
        """A failed batch becomes pending again, for the local worker to run."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE batches SET status = 'pending' WHERE batch_id = ? AND status = 'failed'", (batch_id,))

    def unfinished(self) -> list[BatchRecord]:
        with self._db.reading() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM batches WHERE {_UNFINISHED} ORDER BY received_at_ms"
            ).fetchall()
        return [_record(row) for row in rows]

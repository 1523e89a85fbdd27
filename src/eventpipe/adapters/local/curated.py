"""Curated events: an SQLite index keyed by run and the 16 bytes of their UUID, payloads in segment files.

Each batch's payloads are one append-only segment (written whole, durably, before the index
commits, so an indexed event always has its payload). Keeping the ~1 KB payloads out of the
B-tree removed a fifth of the page writes and most checkpoint reads per batch (strace counts).
Which index pages a batch reads and writes is `RunIndex`'s job (dedup_runs.py): the current run's,
and older runs' only for ids a filter cannot rule out, so the cost per event does not grow with the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventpipe.adapters.curated_base import BaseCuratedStore
from eventpipe.adapters.local.dedup_runs import DEFAULT_FILTER_MIB, DEFAULT_RUN_CAP, IN_EVERY_RUN, RunIndex
from eventpipe.core.timeutil import SystemClock

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence
    from pathlib import Path

    from eventpipe.adapters.curated_base import CuratedRow
    from eventpipe.adapters.local.database import Database
    from eventpipe.core.ports import Clock, RawBucket

FILTER_FILE = "dedup.filter"  # beside the database: the closed runs' filter, built again if lost


def uuid_key(event_id: str) -> bytes:
    """The 16 bytes of a canonical UUID: half the size of its text, so the index holds twice as many."""
    return bytes.fromhex(event_id.replace("-", ""))


class SqliteCuratedStore(BaseCuratedStore):
    """`filter_path` keeps the filter of closed runs across restarts (None: built on first use)."""

    def __init__(
        self,
        db: Database,
        segments: RawBucket,
        *,
        clock: Clock | None = None,
        filter_path: Path | None = None,
        filter_mib: int = DEFAULT_FILTER_MIB,
        run_cap: int = DEFAULT_RUN_CAP,
    ) -> None:
        self._db = db
        self._segments = segments
        self._runs = RunIndex(clock or SystemClock(), filter_path=filter_path, filter_mib=filter_mib, run_cap=run_cap)

    def stage(self, batch_id: str, events: Sequence[CuratedRow]) -> None:
        """Write the batch's segment now, durably, before the transaction of `put_new(..., staged=True)`
        (the same rows) takes SQLite's write lock: its write and fsyncs then hold up no other writer."""
        self._write_segment(batch_id, events)

    def _write_segment(self, batch_id: str, events: Sequence[CuratedRow]) -> None:
        if events:  # a retry rewrites the same segment: the staged events are the same
            self._segments.put(_segment_key(batch_id), b"\n".join(payload for _, _, payload in events))

    def _put_firsts(
        self, batch_id: str, events: Sequence[CuratedRow], positions: Sequence[int], *, staged: bool
    ) -> list[bool]:
        if not staged:  # else `stage` wrote it just before, the caller says
            self._write_segment(batch_id, events)
        keys = [uuid_key(events[position][0]) for position in positions]
        flags: list[bool] = []
        rows = []
        try:
            with self._db.transaction() as conn:
                runs = self._runs.runs(conn)
                owners = self._runs.owners(conn, keys, runs, batch_id)  # None: another batch's
                run = self._runs.current_run(conn, len(keys) - len(owners), runs)
                for key, position in zip(keys, positions, strict=True):
                    stored = key in owners
                    if not stored:  # the segment's line `position` holds its payload
                        rows.append((key, batch_id, events[position][1], position, run))
                    # Stored by this very batch on an earlier try: still new for this batch.
                    flags.append(not stored or owners[key] == batch_id)
                conn.executemany(
                    "INSERT INTO curated (event_id, batch_id, event_type, idx, run) VALUES (?, ?, ?, ?, ?)", rows
                )
                if rows:
                    _record_rowids(conn, batch_id, len(rows))
                self._runs.count_added(conn, run, len(rows), batch_id)
        except BaseException:
            with self._db.reading():  # the database's lock: no other thread is using the filter
                self._runs.forget()  # it may hold a run the rollback reopened; the next call reloads it
            raise
        self._save_filter()
        return flags

    def _save_filter(self) -> None:
        """Under the database's lock: no transaction changes the filter while it is written."""
        with self._db.reading():
            self._runs.save()

    def owners(self, event_ids: Sequence[str]) -> dict[str, str]:
        by_key = {uuid_key(event_id): event_id.lower() for event_id in event_ids}
        with self._db.reading() as conn:
            found = self._runs.owners(conn, list(by_key), self._runs.runs(conn))
            self._runs.save()
        return {by_key[key]: batch_id for key, batch_id in found.items() if batch_id is not None}  # all read

    def count(self) -> int:
        with self._db.reading() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM curated").fetchone()[0])

    def count_by_type(self) -> dict[str, int]:
        with self._db.reading() as conn:
            rows = conn.execute("SELECT event_type, COUNT(*) FROM curated GROUP BY event_type").fetchall()
        return {event_type: count for event_type, count in rows}

    def get(self, event_id: str) -> bytes | None:
        with self._db.reading() as conn:
            query = f"SELECT batch_id, idx FROM curated WHERE {IN_EVERY_RUN} AND event_id = ?"
            row = conn.execute(query, (uuid_key(event_id),)).fetchone()
        if row is None:
            return None
        batch_id, index = str(row[0]), int(row[1])
        return self._segments.get(_segment_key(batch_id)).split(b"\n")[index]


def _record_rowids(conn: sqlite3.Connection, batch_id: str, added: int) -> None:
    """The batch's rowid range (curated_rowids), widened by the `added` rows just inserted: the last
    rowids, one after the other, since the transaction's writes are the only ones."""
    last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
    conn.execute(
        "INSERT INTO curated_rowids (batch_id, first_id, last_id) VALUES (?, ?, ?) ON CONFLICT (batch_id)"
        " DO UPDATE SET first_id = min(first_id, excluded.first_id), last_id = max(last_id, excluded.last_id)",
        (batch_id, last - added + 1, last),
    )


def _segment_key(batch_id: str) -> str:
    return f"{batch_id}.ndjson"

"""Per-minute aggregates in SQLite: counts, mergeable sketches (users, funnel sessions), dirty hours."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.adapters.insights_base import BaseInsightsStore, WindowRead
from eventpipe.core.aggregate import hour_of
from eventpipe.core.funnel import StepSketch
from eventpipe.core.insight_counters import USERS, join_name, split_name
from eventpipe.core.working_sketches import WorkingSketches

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from eventpipe.adapters.local.database import Database
    from eventpipe.core.insight_counters import MinuteChange

_ADD_COUNT = (
    "INSERT INTO minute_counts (minute, segment, metric, key, value) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (minute, segment, metric, key) DO UPDATE SET value = value + excluded.value"
)
_DIRTY = "INSERT INTO dirty_hours (hour, version) VALUES (?, 1) ON CONFLICT (hour) DO UPDATE SET version = version + 1"


class SqliteInsightsStore(BaseInsightsStore):
    def __init__(self, db: Database) -> None:
        self._db = db
        # (minute, segment, step) -> the unions this process last wrote; step -1 for the users' sketch
        self._working: WorkingSketches[tuple[int, str, int]] = WorkingSketches()

    def _apply_changes(self, batch_id: str, batch_minute: int, changes: Sequence[MinuteChange]) -> bool:
        with self._db.transaction() as conn:
            if conn.execute("INSERT OR IGNORE INTO applied_batches VALUES (?)", (batch_id,)).rowcount == 0:
                return False
            counts = [
                (change.minute, change.segment, *split_name(name), amount)
                for change in changes
                for name, amount in change.counters.items()
            ]
            self._merge_sketches(conn, changes)
            conn.executemany(_ADD_COUNT, counts)
            conn.executemany(_DIRTY, [(hour,) for hour in sorted({hour_of(change.minute) for change in changes})])
            return True

    def _merge_sketches(self, conn: sqlite3.Connection, changes: Sequence[MinuteChange]) -> None:
        """The batch's sketches united with the stored ones: one read and one write per table, not per minute."""
        changes = [change for change in changes if change.sketches]
        minutes = sorted({change.minute for change in changes})
        users = {
            (m, s): blob for m, s, blob in _rows_of_minutes(conn, "minute, segment, users", "minute_sketches", minutes)
        }
        steps = {
            (m, s, step): blob
            for m, s, step, blob in _rows_of_minutes(conn, "minute, segment, step, sketch", "minute_sessions", minutes)
        }
        user_rows, step_rows = [], []
        for change in changes:
            minute, segment = change.minute, change.segment
            # A sketch the batch leaves as it was (its users counted already, its sessions above a full
            # step sketch's sampling threshold: most batches once a minute is busy) is not written again.
            if USERS in change.sketches:
                stored = users.get((minute, segment))
                merged = self._working.merged_users((minute, segment, -1), change.sketches[USERS], stored)
                if merged != stored:
                    user_rows.append((minute, segment, merged))
            for name, sessions in sorted(change.sketches.items()):
                if name != USERS:
                    key = (minute, segment, int(name[1:]))
                    stored = steps.get(key)
                    merged = self._working.merged_step(key, sessions, stored)
                    if merged != stored:
                        step_rows.append((*key, merged))
        conn.executemany("INSERT OR REPLACE INTO minute_sketches (minute, segment, users) VALUES (?, ?, ?)", user_rows)
        conn.executemany(
            "INSERT OR REPLACE INTO minute_sessions (minute, segment, step, sketch) VALUES (?, ?, ?, ?)", step_rows
        )

    def close(self) -> None:
        """Forget the working sketches (the database is closed by its owner)."""
        self._working.clear()

    def dirty_hours(self) -> list[tuple[int, int]]:
        with self._db.reading() as conn:
            return [(int(h), int(v)) for h, v in conn.execute("SELECT hour, version FROM dirty_hours ORDER BY hour")]

    def clear_dirty(self, hour: int, version: int) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute("DELETE FROM dirty_hours WHERE hour = ? AND version = ?", (hour, version))
            return cursor.rowcount == 1

    def _read_window(self, since_minute: int, until_minute: int, steps_since: int | None) -> WindowRead:
        window = (since_minute, until_minute)
        with self._db.reading() as conn:
            counts = conn.execute(
                "SELECT minute, segment, metric, key, value FROM minute_counts WHERE minute >= ? AND minute < ?",
                window,
            ).fetchall()
            users = conn.execute(
                "SELECT minute, segment, users FROM minute_sketches WHERE minute >= ? AND minute < ?", window
            ).fetchall()
            steps = []
            if steps_since is not None:
                steps = conn.execute(
                    "SELECT minute, segment, step, sketch FROM minute_sessions WHERE minute >= ? AND minute < ?",
                    (steps_since, until_minute),
                ).fetchall()
        return WindowRead(
            counters=[
                (minute, segment, join_name(metric, key), value) for minute, segment, metric, key, value in counts
            ],
            users=users,
            steps=[StepSketch(*row) for row in steps],
        )


_MINUTES_PER_QUERY = 900  # below SQLite's smallest limit on bound variables


def _rows_of_minutes(conn: sqlite3.Connection, columns: str, table: str, minutes: list[int]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(minutes), _MINUTES_PER_QUERY):
        chunk = minutes[start : start + _MINUTES_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows.extend(conn.execute(f"SELECT {columns} FROM {table} WHERE minute IN ({marks})", chunk).fetchall())
    return rows

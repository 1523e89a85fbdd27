"""Per-minute aggregates in SQLite: counts, mergeable sketches (users, funnel sessions), dirty hours."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.core.aggregate import changed_hours
from eventpipe.core.funnel import SESSION_LOOKBACK_S, StepSketch, funnel_counts
from eventpipe.core.insight_rows import InsightsRows, MinuteRow
from eventpipe.core.segments import ALL_PEOPLE, DEFAULT_SEGMENT
from eventpipe.core.working_sketches import WorkingSketches

if TYPE_CHECKING:
    import sqlite3

    from eventpipe.adapters.local.database import Database
    from eventpipe.core.aggregate import BatchAggregate, MinuteAggregate
    from eventpipe.core.segments import InsightsView

_ADD_COUNT = (
    "INSERT INTO minute_counts (minute, segment, metric, key, value) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (minute, segment, metric, key) DO UPDATE SET value = value + excluded.value"
)
_DIRTY = "INSERT INTO dirty_hours (hour, version) VALUES (?, 1) ON CONFLICT (hour) DO UPDATE SET version = version + 1"


class SqliteInsightsStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # (minute, segment, step) -> the unions this process last wrote; step -1 for the users' sketch
        self._working: WorkingSketches[tuple[int, str, int]] = WorkingSketches()

    def apply(self, batch_id: str, aggregate: BatchAggregate) -> bool:
        with self._db.transaction() as conn:
            if conn.execute("INSERT OR IGNORE INTO applied_batches VALUES (?)", (batch_id,)).rowcount == 0:
                return False
            batch_minute, default = aggregate.batch_minute, DEFAULT_SEGMENT
            counts: list[tuple[int, str, str, str, float]] = [
                (batch_minute, default, "rejected", code, n) for code, n in aggregate.rejected.items() if n
            ]
            if aggregate.duplicates:
                counts.append((batch_minute, default, "duplicates", "", aggregate.duplicates))
            buckets = list(aggregate.buckets())
            for minute, segment, bucket in buckets:
                counts.extend((minute, segment, "events", t, n) for t, n in bucket.events.items())
                counts.append((minute, segment, "revenue", "", bucket.revenue))
                counts.extend((minute, segment, "lag", str(b), n) for b, n in bucket.lag_ms.items())
                counts.extend((minute, segment, "country", c, n) for c, n in bucket.countries.items())
            self._merge_sketches(conn, buckets)
            conn.executemany(_ADD_COUNT, counts)
            conn.executemany(_DIRTY, [(hour,) for hour in changed_hours(aggregate)])
            return True

    def _merge_sketches(self, conn: sqlite3.Connection, buckets: list[tuple[int, str, MinuteAggregate]]) -> None:
        """The batch's sketches united with the stored ones: one read and one write per table, not per minute."""
        minutes = sorted({minute for minute, _, _ in buckets})
        users = {
            (m, s): blob for m, s, blob in _rows_of_minutes(conn, "minute, segment, users", "minute_sketches", minutes)
        }
        steps = {
            (m, s, step): blob
            for m, s, step, blob in _rows_of_minutes(conn, "minute, segment, step, sketch", "minute_sessions", minutes)
        }
        user_rows, step_rows = [], []
        for minute, segment, bucket in buckets:
            merged = self._working.merged_users((minute, segment, -1), bucket.users, users.get((minute, segment)))
            user_rows.append((minute, segment, merged))
            for step, sessions in sorted(bucket.sessions.items()):
                key = (minute, segment, step)
                step_rows.append((*key, self._working.merged_step(key, sessions, steps.get(key))))
        conn.executemany("INSERT OR REPLACE INTO minute_sketches (minute, segment, users) VALUES (?, ?, ?)", user_rows)
        conn.executemany(
            "INSERT OR REPLACE INTO minute_sessions (minute, segment, step, sketch) VALUES (?, ?, ?, ?)", step_rows
        )

    def dirty_hours(self) -> list[tuple[int, int]]:
        with self._db.reading() as conn:
            return [(int(h), int(v)) for h, v in conn.execute("SELECT hour, version FROM dirty_hours ORDER BY hour")]

    def clear_dirty(self, hour: int, version: int) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute("DELETE FROM dirty_hours WHERE hour = ? AND version = ?", (hour, version))
            return cursor.rowcount == 1

    def read(
        self, since_minute: int, until_minute: int, *, funnel: bool = True, view: InsightsView = ALL_PEOPLE
    ) -> InsightsRows:
        window = (since_minute, until_minute)
        with self._db.reading() as conn:
            counts = conn.execute(
                "SELECT minute, segment, metric, key, value FROM minute_counts WHERE minute >= ? AND minute < ?",
                window,
            ).fetchall()
            sketches = conn.execute(
                "SELECT minute, segment, users FROM minute_sketches WHERE minute >= ? AND minute < ?", window
            ).fetchall()
            steps = []
            if funnel:
                steps = conn.execute(
                    "SELECT minute, segment, step, sketch FROM minute_sessions WHERE minute >= ? AND minute < ?",
                    (since_minute - SESSION_LOOKBACK_S, until_minute),
                ).fetchall()
        counted = [StepSketch(minute, step, sketch) for minute, segment, step, sketch in steps if view.counts(segment)]
        sessions = funnel_counts(counted, since_minute=since_minute, until_minute=until_minute)
        rows: dict[tuple[int, str], MinuteRow] = {}
        for minute, segment, metric, key, value in counts:
            row = rows.setdefault((minute, segment), MinuteRow(minute, segment=segment))
            if metric == "events":
                row.events[key] = int(value)
            elif metric == "revenue":
                row.revenue = value
            elif metric == "rejected":
                row.rejected[key] = int(value)
            elif metric == "duplicates":
                row.duplicates = int(value)
            elif metric == "lag":
                row.lag_ms[int(key)] = int(value)
            elif metric == "country":
                row.countries[key] = int(value)
        for minute, segment, users in sketches:
            rows.setdefault((minute, segment), MinuteRow(minute, segment=segment)).users = users
        return InsightsRows(minutes=list(rows.values()), funnel=sessions)


_MINUTES_PER_QUERY = 900  # below SQLite's smallest limit on bound variables


def _rows_of_minutes(conn: sqlite3.Connection, columns: str, table: str, minutes: list[int]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(minutes), _MINUTES_PER_QUERY):
        chunk = minutes[start : start + _MINUTES_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows.extend(conn.execute(f"SELECT {columns} FROM {table} WHERE minute IN ({marks})", chunk).fetchall())
    return rows

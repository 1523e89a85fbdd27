"""Per-minute aggregates in SQLite: counts, mergeable sketches and the per-session funnel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventpipe.core.aggregate import FUNNEL_STEPS, merged_users
from eventpipe.core.funnel import SESSION_LOOKBACK_S
from eventpipe.core.insight_rows import InsightsRows, MinuteRow

if TYPE_CHECKING:
    import sqlite3

    from eventpipe.adapters.local.database import Database
    from eventpipe.core.aggregate import BatchAggregate, MinuteAggregate

_ADD_COUNT = (
    "INSERT INTO minute_counts (minute, metric, key, value) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (minute, metric, key) DO UPDATE SET value = value + excluded.value"
)
_ADD_STEP = "INSERT OR IGNORE INTO funnel (minute, session_id, step) VALUES (?, ?, ?)"
# Per session: whether it reached each step in the window (w), and each step since the lookback (a).
_FUNNEL_QUERY = (
    "SELECT "
    + ", ".join(
        "COALESCE(SUM(" + " AND ".join([f"w{step}", *(f"a{n}" for n in range(step))]) + "), 0)"
        for step in range(len(FUNNEL_STEPS))
    )
    + " FROM (SELECT "
    + ", ".join(
        [f"MAX(step = {n} AND minute >= :since) AS w{n}" for n in range(len(FUNNEL_STEPS))]
        + [f"MAX(step = {n}) AS a{n}" for n in range(len(FUNNEL_STEPS) - 1)]
    )
    + " FROM funnel WHERE minute >= :lookback AND minute < :until GROUP BY session_id)"
)


class SqliteInsightsStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def apply(self, batch_id: str, aggregate: BatchAggregate) -> bool:
        with self._db.transaction() as conn:
            if conn.execute("INSERT OR IGNORE INTO applied_batches VALUES (?)", (batch_id,)).rowcount == 0:
                return False
            counts: list[tuple[int, str, str, float]] = [
                (aggregate.batch_minute, "rejected", code, n) for code, n in aggregate.rejected.items() if n
            ]
            if aggregate.duplicates:
                counts.append((aggregate.batch_minute, "duplicates", "", aggregate.duplicates))
            for minute, bucket in aggregate.minutes.items():
                counts.extend((minute, "events", t, n) for t, n in bucket.events.items())
                counts.append((minute, "revenue", "", bucket.revenue))
                counts.extend((minute, "lag", str(b), n) for b, n in bucket.lag_ms.items())
                self._merge_users(conn, minute, bucket)
            conn.executemany(_ADD_COUNT, counts)
            conn.executemany(_ADD_STEP, sorted((minute, session, step) for session, step, minute in aggregate.funnel))
            return True

    @staticmethod
    def _merge_users(conn: sqlite3.Connection, minute: int, bucket: MinuteAggregate) -> None:
        row = conn.execute("SELECT users FROM minute_sketches WHERE minute = ?", (minute,)).fetchone()
        conn.execute(
            "INSERT OR REPLACE INTO minute_sketches (minute, users) VALUES (?, ?)",
            (minute, merged_users(bucket.users, row[0] if row else None)),
        )

    def read(self, since_minute: int, until_minute: int, *, funnel: bool = True) -> InsightsRows:
        window = (since_minute, until_minute)
        with self._db.reading() as conn:
            counts = conn.execute(
                "SELECT minute, metric, key, value FROM minute_counts WHERE minute >= ? AND minute < ?",
                window,
            ).fetchall()
            sketches = conn.execute(
                "SELECT minute, users FROM minute_sketches WHERE minute >= ? AND minute < ?", window
            ).fetchall()
            bounds = {"since": since_minute, "until": until_minute, "lookback": since_minute - SESSION_LOOKBACK_S}
            sessions = [0] * len(FUNNEL_STEPS)
            if funnel:
                sessions = [int(n) for n in conn.execute(_FUNNEL_QUERY, bounds).fetchone()]
        rows: dict[int, MinuteRow] = {}
        for minute, metric, key, value in counts:
            row = rows.setdefault(minute, MinuteRow(minute))
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
        for minute, users in sketches:
            rows.setdefault(minute, MinuteRow(minute)).users = users
        return InsightsRows(minutes=list(rows.values()), funnel=sessions)

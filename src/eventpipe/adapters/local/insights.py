"""Per-minute aggregates in SQLite: counts, mergeable sketches and the per-session funnel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import datasketches

from eventpipe.core.aggregate import FUNNEL_STEPS
from eventpipe.core.insights import InsightsRows, MinuteRow

if TYPE_CHECKING:
    import sqlite3

    from eventpipe.adapters.local.database import Database
    from eventpipe.core.aggregate import BatchAggregate, MinuteAggregate

_ADD_COUNT = (
    "INSERT INTO minute_counts (minute, metric, key, value) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (minute, metric, key) DO UPDATE SET value = value + excluded.value"
)
# A session's step counts at the first minute it was reached.
_ADD_STEP = (
    "INSERT INTO funnel (session_id, step, minute) VALUES (?, ?, ?)"
    " ON CONFLICT (session_id, step) DO UPDATE SET minute = min(minute, excluded.minute)"
)
# Sessions that reached a step in the window, having reached every earlier step (at any time).
_FUNNEL_QUERY = [
    "SELECT COUNT(*) FROM funnel f WHERE f.step = ? AND f.minute >= ? AND f.minute < ?"
    + "".join(
        f" AND EXISTS (SELECT 1 FROM funnel g{n} WHERE g{n}.session_id = f.session_id AND g{n}.step = {n})"
        for n in range(step)
    )
    for step in range(len(FUNNEL_STEPS))
]


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
            conn.executemany(_ADD_STEP, sorted(aggregate.funnel))
            return True

    @staticmethod
    def _merge_users(conn: sqlite3.Connection, minute: int, bucket: MinuteAggregate) -> None:
        users = bucket.users
        row = conn.execute("SELECT users FROM minute_sketches WHERE minute = ?", (minute,)).fetchone()
        if row is not None:  # merge into the stored sketch, leaving the caller's untouched
            union = datasketches.hll_union(users.lg_config_k)
            union.update(users)
            union.update(datasketches.hll_sketch.deserialize(row[0]))
            users = union.get_result()
        conn.execute(
            "INSERT OR REPLACE INTO minute_sketches (minute, users) VALUES (?, ?)",
            (minute, users.serialize_compact()),
        )

    def read(self, since_minute: int, until_minute: int) -> InsightsRows:
        window = (since_minute, until_minute)
        with self._db.reading() as conn:
            counts = conn.execute(
                "SELECT minute, metric, key, value FROM minute_counts WHERE minute >= ? AND minute < ?",
                window,
            ).fetchall()
            sketches = conn.execute(
                "SELECT minute, users FROM minute_sketches WHERE minute >= ? AND minute < ?", window
            ).fetchall()
            funnel = [int(conn.execute(q, (step, *window)).fetchone()[0]) for step, q in enumerate(_FUNNEL_QUERY)]
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
        return InsightsRows(minutes=list(rows.values()), funnel=funnel)

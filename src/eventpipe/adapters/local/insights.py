"""Per-minute aggregates in SQLite: counts, mergeable sketches (users, funnel sessions), dirty hours.

A batch adds its counters to the minutes' rows, but appends its sketches to `sketch_deltas`: its own
sketch per minute, segment and step, a few dozen to a few hundred bytes while the batch holds few
users of that minute. Writing each merged sketch back every batch rewrote 2 to 16 KB per minute,
segment and step (overflow pages of the table, about 140 of them a 500-event batch of the benchmark's
stream, whose events spread over 30 minutes): at 500-event batches, 4 µs per event. Every `FOLD_ROWS`
delta rows or `FOLD_BATCHES` batches this store appended, the fold unites every delta into
`minute_sketches` and `minute_sessions` and deletes them, in the batch's transaction. Reads unite
the stored sketch with the minute's deltas, so a batch counts in them as soon as it commits. A
union is idempotent and the deltas are written with the batch's `applied_batches` row, so a batch
still counts once; a fold rolled back leaves its deltas for the next one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import datasketches

from eventpipe.adapters.insights_base import BaseInsightsStore, WindowRead
from eventpipe.core.aggregate import hour_of, union_of
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
_ADD_DELTA = "INSERT INTO sketch_deltas (minute, segment, step, sketch) VALUES (?, ?, ?, ?)"
USERS_STEP = -1  # a delta's `step` for the users' HyperLogLog; 0, 1, 2 are funnel steps (core/funnel.py)
# A fold every 4,096 delta rows (about 28 500-event batches of the benchmark's stream, each touching 48
# minutes and segments) or 32 batches: a minute's read unites at most a few dozen small deltas.
FOLD_ROWS = 4096
FOLD_BATCHES = 32


class SqliteInsightsStore(BaseInsightsStore):
    def __init__(self, db: Database, *, fold_rows: int = FOLD_ROWS, fold_batches: int = FOLD_BATCHES) -> None:
        self._db = db
        # (minute, segment, step) -> the unions this process last wrote; step -1 for the users' sketch
        self._working: WorkingSketches[tuple[int, str, int]] = WorkingSketches()
        self._fold_rows = fold_rows
        self._fold_batches = fold_batches
        self._appended_rows = 0  # delta rows and batches this store appended since its last fold
        self._appended_batches = 0

    def _apply_changes(self, batch_id: str, batch_minute: int, changes: Sequence[MinuteChange]) -> bool:
        with self._db.transaction() as conn:
            if conn.execute("INSERT OR IGNORE INTO applied_batches VALUES (?)", (batch_id,)).rowcount == 0:
                return False
            counts = [
                (change.minute, change.segment, *split_name(name), amount)
                for change in changes
                for name, amount in change.counters.items()
            ]
            deltas = _delta_rows(changes)
            conn.executemany(_ADD_DELTA, deltas)
            conn.executemany(_ADD_COUNT, counts)
            conn.executemany(_DIRTY, [(hour,) for hour in sorted({hour_of(change.minute) for change in changes})])
            self._appended_rows += len(deltas)
            self._appended_batches += 1
            if self._appended_rows >= self._fold_rows or self._appended_batches >= self._fold_batches:
                self.fold(conn)
            return True

    def fold(self, conn: sqlite3.Connection | None = None) -> None:
        """Unite every delta (this process's and any other's) into the stored sketches, and delete them.

        In the caller's transaction when given one, else in a transaction of its own."""
        if conn is None:
            with self._db.transaction() as own:
                self.fold(own)
            return
        rows = conn.execute("SELECT id, minute, segment, step, sketch FROM sketch_deltas ORDER BY id").fetchall()
        if rows:
            self._merge_deltas(conn, rows)
            conn.execute("DELETE FROM sketch_deltas WHERE id <= ?", (rows[-1][0],))
        self._appended_rows = self._appended_batches = 0

    def _merge_deltas(self, conn: sqlite3.Connection, deltas: list[tuple[Any, ...]]) -> None:
        """The deltas united with the stored sketches: one read and one write per table, not per minute."""
        user_deltas: dict[tuple[int, str], list[datasketches.hll_sketch]] = {}
        step_deltas: dict[tuple[int, str, int], list[datasketches.compact_theta_sketch]] = {}
        for _, minute, segment, step, blob in deltas:
            if step == USERS_STEP:
                user_deltas.setdefault((minute, segment), []).append(datasketches.hll_sketch.deserialize(blob))
            else:
                step_deltas.setdefault((minute, segment, step), []).append(
                    datasketches.compact_theta_sketch.deserialize(blob)
                )
        minutes = sorted({minute for _, minute, *_ in deltas})
        users = {
            (m, s): blob for m, s, blob in _rows_of_minutes(conn, "minute, segment, users", "minute_sketches", minutes)
        }
        steps = {
            (m, s, step): blob
            for m, s, step, blob in _rows_of_minutes(conn, "minute, segment, step, sketch", "minute_sessions", minutes)
        }
        user_rows, step_rows = [], []
        # A sketch the deltas leave as it was (their users counted already, their sessions above a full
        # step sketch's sampling threshold: most, once a minute is busy) is not written again.
        for (minute, segment), sketches in sorted(user_deltas.items()):
            stored = users.get((minute, segment))
            merged = self._working.merged_users((minute, segment, USERS_STEP), sketches, stored)
            if merged != stored:
                user_rows.append((minute, segment, merged))
        for key, sessions in sorted(step_deltas.items()):
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
            # The deltas not folded yet: a few thousand small rows at most, read whole.
            since = since_minute if steps_since is None else min(since_minute, steps_since)
            deltas = conn.execute(
                "SELECT minute, segment, step, sketch FROM sketch_deltas WHERE minute >= ? AND minute < ?",
                (since, until_minute),
            ).fetchall()
        user_blobs: dict[tuple[int, str], list[bytes]] = {(m, s): [blob] for m, s, blob in users}
        for minute, segment, step, blob in deltas:
            if step == USERS_STEP:
                if minute >= since_minute:
                    user_blobs.setdefault((minute, segment), []).append(blob)
            elif steps_since is not None:
                steps.append((minute, segment, step, blob))  # the funnel unites a step's sketches anyway
        return WindowRead(
            counters=[
                (minute, segment, join_name(metric, key), value) for minute, segment, metric, key, value in counts
            ],
            users=[(m, s, blobs[0] if len(blobs) == 1 else union_of(blobs)) for (m, s), blobs in user_blobs.items()],
            steps=[StepSketch(*row) for row in steps],
        )


def _delta_rows(changes: Sequence[MinuteChange]) -> list[tuple[int, str, int, bytes]]:
    """The batch's own sketches, serialized small: a sparse HyperLogLog, a compact Theta sketch."""
    rows = []
    for change in changes:
        for name, sketch in change.sketches.items():
            if name == USERS:
                rows.append((change.minute, change.segment, USERS_STEP, bytes(sketch.serialize_compact())))
            else:
                rows.append((change.minute, change.segment, int(name[1:]), bytes(sketch.compact().serialize())))
    return rows


_MINUTES_PER_QUERY = 900  # below SQLite's smallest limit on bound variables


def _rows_of_minutes(conn: sqlite3.Connection, columns: str, table: str, minutes: list[int]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(minutes), _MINUTES_PER_QUERY):
        chunk = minutes[start : start + _MINUTES_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows.extend(conn.execute(f"SELECT {columns} FROM {table} WHERE minute IN ({marks})", chunk).fetchall())
    return rows

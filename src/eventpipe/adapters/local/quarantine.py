"""Rejected events in SQLite, with their original text and reasons; one record per (batch, index)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from eventpipe.core.model import Reason, Rejection

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventpipe.adapters.local.database import Database

_COLUMNS = "batch_id, idx, stage, reasons, raw, event_id"
_PAGE = 1000


def _rejection(row: tuple[str, int, str, str, str, str | None]) -> Rejection:
    batch_id, index, stage, reasons, raw, event_id = row
    return Rejection(batch_id, index, stage, tuple(Reason(**r) for r in orjson.loads(reasons)), raw, event_id)


def _row(r: Rejection) -> tuple[str, int, str, bytes, str, str | None]:
    return (r.batch_id, r.index, r.stage, orjson.dumps([x.as_dict() for x in r.reasons]), r.raw, r.event_id)


class SqliteQuarantine:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, rejections: Sequence[Rejection]) -> None:
        with self._db.transaction() as conn:
            conn.executemany(
                f"INSERT INTO quarantine ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (batch_id, idx)"
                " DO UPDATE SET stage = excluded.stage, reasons = excluded.reasons, event_id = excluded.event_id",
                [_row(r) for r in rejections],
            )

    def update(self, rejections: Sequence[Rejection]) -> None:
        # The text stays as stored, as `add` leaves it on a conflict.
        with self._db.transaction() as conn:
            conn.executemany(
                "UPDATE quarantine SET stage = ?, reasons = ?, event_id = ? WHERE batch_id = ? AND idx = ?",
                [
                    (stage, reasons, event_id, batch_id, idx)
                    for batch_id, idx, stage, reasons, _, event_id in map(_row, rejections)
                ],
            )

    def for_batch(self, batch_id: str) -> list[Rejection]:
        with self._db.reading() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM quarantine WHERE batch_id = ? ORDER BY idx", (batch_id,)
            ).fetchall()
        return [_rejection(row) for row in rows]

    def iter_all(self, limit: int | None = None, *, newest_first: bool = False) -> Iterator[Rejection]:
        """Oldest first (or newest first), a page at a time; records added while iterating are not included."""
        with self._db.reading() as conn:
            last_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM quarantine").fetchone()[0]
        # Keyset pagination on the row id, in either direction: `after` is the last id of the previous page.
        after, left = (last_id + 1, limit) if newest_first else (0, limit)
        while left is None or left > 0:
            page = min(_PAGE, left) if left is not None else _PAGE
            with self._db.reading() as conn:
                if newest_first:
                    sql = f"SELECT id, {_COLUMNS} FROM quarantine WHERE id < ? ORDER BY id DESC LIMIT ?"
                    rows = conn.execute(sql, (after, page)).fetchall()
                else:
                    sql = f"SELECT id, {_COLUMNS} FROM quarantine WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"
                    rows = conn.execute(sql, (after, last_id, page)).fetchall()
            if not rows:
                return
            for row in rows:
                yield _rejection(row[1:])
            after = rows[-1][0]
            if left is not None:
                left -= len(rows)

    def latest(self, limit: int) -> list[Rejection]:
        """The most recently quarantined records, newest first (the dashboard's table)."""
        with self._db.reading() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM quarantine ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_rejection(row) for row in rows]

    def remove(self, keys: Sequence[tuple[str, int]]) -> None:
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM quarantine WHERE batch_id = ? AND idx = ?", keys)

    def count(self) -> int:
        with self._db.reading() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])

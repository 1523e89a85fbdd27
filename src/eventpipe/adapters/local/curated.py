"""Curated events in SQLite, keyed by the 16 bytes of their UUID."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from eventpipe.adapters.local.database import Database


# Below the smallest SQLite limit on bound variables (999 before 3.32), whatever the batch size.
_IDS_PER_QUERY = 900


def uuid_key(event_id: str) -> bytes:
    """The 16 bytes of a canonical UUID: half the size of its text, so the index holds twice as many."""
    return bytes.fromhex(event_id.replace("-", ""))


class SqliteCuratedStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def put_new(self, batch_id: str, events: Sequence[tuple[str, str, bytes]]) -> list[bool]:
        keys = [uuid_key(event_id) for event_id, _, _ in events]
        flags: list[bool] = []
        rows = []
        with self._db.transaction() as conn:
            owners = self._owners(conn, keys)
            seen: set[bytes] = set()
            for key, (_, event_type, payload) in zip(keys, events, strict=True):
                if key in seen:  # the same id twice in one batch: the first one wins
                    flags.append(False)
                    continue
                seen.add(key)
                owner = owners.get(key)
                if owner is None:
                    rows.append((key, batch_id, event_type, payload))
                # Stored by this very batch on an earlier try: still new for this batch.
                flags.append(owner is None or owner == batch_id)
            conn.executemany("INSERT INTO curated (event_id, batch_id, event_type, payload) VALUES (?, ?, ?, ?)", rows)
        return flags

    @staticmethod
    def _owners(conn: sqlite3.Connection, keys: list[bytes]) -> dict[bytes, str]:
        owners: dict[bytes, str] = {}
        for start in range(0, len(keys), _IDS_PER_QUERY):
            chunk = keys[start : start + _IDS_PER_QUERY]
            query = f"SELECT event_id, batch_id FROM curated WHERE event_id IN ({','.join('?' * len(chunk))})"
            owners.update(conn.execute(query, chunk).fetchall())
        return owners

    def count(self) -> int:
        with self._db.reading() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM curated").fetchone()[0])

    def count_by_type(self) -> dict[str, int]:
        with self._db.reading() as conn:
            rows = conn.execute("SELECT event_type, COUNT(*) FROM curated GROUP BY event_type").fetchall()
        return {event_type: count for event_type, count in rows}

    def get(self, event_id: str) -> bytes | None:
        with self._db.reading() as conn:
            row = conn.execute("SELECT payload FROM curated WHERE event_id = ?", (uuid_key(event_id),)).fetchone()
        return None if row is None else bytes(row[0])

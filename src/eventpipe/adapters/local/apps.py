"""Apps and the hashes of their write keys, in the local SQLite database.

The table is created on first use (`CREATE TABLE IF NOT EXISTS`), so a data directory made before
apps existed gains it without a schema change. `eventpipe apps create` writes it from its own
process while `eventpipe up` runs: the server reads it on every keyed request (WAL lets both in).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.errors import StorageError
from eventpipe.core.model import App

if TYPE_CHECKING:
    from eventpipe.adapters.local.database import Database

TABLE = """
CREATE TABLE IF NOT EXISTS apps (
    app_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    origins TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
)
"""
_COLUMNS = "app_id, name, key_hash, origins, created_at_ms, revoked_at_ms"


def _app(row: tuple[Any, ...]) -> App:
    app_id, name, key_hash, origins, created_at_ms, revoked_at_ms = row
    return App(
        app_id=str(app_id),
        name=str(name),
        key_hash=str(key_hash),
        origins=tuple(orjson.loads(str(origins))),
        created_at_ms=int(created_at_ms),
        revoked_at_ms=None if revoked_at_ms is None else int(revoked_at_ms),
    )


class SqliteAppStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._ready = False
        self._table_seen = False

    def _ensure_table(self, conn: sqlite3.Connection) -> None:
        if not self._ready:
            conn.execute(TABLE)
            self._ready = True

    def create(self, app: App) -> None:
        with self._db.transaction() as conn:
            self._ensure_table(conn)
            conn.execute(
                f"INSERT INTO apps ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    app.app_id,
                    app.name,
                    app.key_hash,
                    orjson.dumps(list(app.origins)).decode(),
                    app.created_at_ms,
                    app.revoked_at_ms,
                ),
            )

    def by_key_hash(self, key_hash: str) -> App | None:
        row = self._read_one(f"SELECT {_COLUMNS} FROM apps WHERE key_hash = ?", (key_hash,))
        return None if row is None else _app(row)

    def list_all(self) -> list[App]:
        with self._db.reading() as conn:
            try:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM apps ORDER BY created_at_ms, app_id").fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise
        return [_app(row) for row in rows]

    def revoke(self, app_id: str, now_ms: int) -> bool:
        with self._db.transaction() as conn:
            self._ensure_table(conn)
            conn.execute(
                "UPDATE apps SET revoked_at_ms = ? WHERE app_id = ? AND revoked_at_ms IS NULL", (now_ms, app_id)
            )
            return conn.execute("SELECT 1 FROM apps WHERE app_id = ?", (app_id,)).fetchone() is not None

    def any_app(self) -> bool:
        if not self._table_seen:
            # Until an app is made the table is missing, and a SELECT from it fails: the server asked
            # this for every keyless request, and the failed statement cost it about 40 µs each time.
            if self._read_one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'apps'", ()) is None:
                return False
            self._table_seen = True  # a table is never dropped
        return self._read_one("SELECT 1 FROM apps LIMIT 1", ()) is not None

    def _read_one(self, sql: str, parameters: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._db.reading() as conn:
            try:
                row: tuple[Any, ...] | None = conn.execute(sql, parameters).fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # no app was ever created in this data directory
                    return None
                raise StorageError(f"database error: {exc}") from exc
        return row

"""The pseudonym keys a data directory's events were written with, each kept as a check value (the
pseudonym of a fixed text, never the key itself). An erasure matches a user's ids in clear and as
pseudonyms of the key it is given: without that key, or with another, it would leave the user's
pseudonymised events behind and report success, so `erasure/run.py` refuses to run instead."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventpipe.core.enrich.pseudonymise import pseudonym

if TYPE_CHECKING:
    from eventpipe.adapters.local.database import Database

_TABLE = "CREATE TABLE IF NOT EXISTS pseudonym_keys (check_value TEXT PRIMARY KEY) WITHOUT ROWID"
_CHECKED_TEXT = "eventpipe pseudonym key check"


def check_value(key: bytes) -> str:
    return pseudonym(key, _CHECKED_TEXT)


class PseudonymKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    def note(self, key: bytes) -> None:
        """Record that events are pseudonymised with `key` here (once per process that processes them)."""
        with self._db.transaction() as conn:
            conn.execute(_TABLE)
            conn.execute("INSERT OR IGNORE INTO pseudonym_keys (check_value) VALUES (?)", (check_value(key),))

    def check_values(self) -> set[str]:
        """The check values of every key noted; none in a data directory that never pseudonymised."""
        with self._db.reading() as conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'pseudonym_keys'").fetchone():
                return set()
            return {str(row[0]) for row in conn.execute("SELECT check_value FROM pseudonym_keys")}

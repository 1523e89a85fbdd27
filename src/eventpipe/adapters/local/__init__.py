"""The ports implemented on one machine: a folder as the bucket, SQLite (WAL) as the stores."""

from __future__ import annotations

from eventpipe.adapters.local.apps import SqliteAppStore
from eventpipe.adapters.local.batches import SqliteBatchStore
from eventpipe.adapters.local.bucket import FolderBucket
from eventpipe.adapters.local.curated import SqliteCuratedStore
from eventpipe.adapters.local.database import Database
from eventpipe.adapters.local.insights import SqliteInsightsStore
from eventpipe.adapters.local.quarantine import SqliteQuarantine

__all__ = [
    "Database",
    "FolderBucket",
    "SqliteAppStore",
    "SqliteBatchStore",
    "SqliteCuratedStore",
    "SqliteInsightsStore",
    "SqliteQuarantine",
]

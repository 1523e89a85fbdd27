"""File drops: files that appear under `<data dir>/bucket/incoming/` go the way of an S3 notification.

A file is read once it is complete: names that start with a dot or end in `.tmp`, `.part` or
`.partial` are skipped (write under such a name, then rename: a rename is atomic), and a file is
taken only once it has not been modified for `SETTLE_S` seconds (checked in two scans), so a
writer that pauses for a moment is not read half-way.

Its batch ids come from its key, size and modification time, like an S3 object version: a file
read again after a crash finishes what is missing and counts nothing twice. Once its batches are
stored the file moves to `processed/`, so `incoming/` holds only what is still to be read. A file
that changed while it was read stays, and is read again as a new version (the events read the
first time then count as duplicates).
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from eventpipe.handlers.drops import INCOMING_PREFIX, DropOutcome, ObjectDrop, ingest_drop

if TYPE_CHECKING:
    from pathlib import Path

    from eventpipe.localrun.runtime import LocalRuntime

log = logging.getLogger(__name__)
PROCESSED_PREFIX = "processed/"
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial")
SETTLE_S = 2.0

Signature = tuple[int, int]  # size, modification time in ns


def _signature(path: str | Path) -> Signature | None:
    try:
        stat = os.stat(path)
    except OSError:  # gone since it was listed
        return None
    return stat.st_size, stat.st_mtime_ns


class DropWatcher:
    def __init__(self, runtime: LocalRuntime) -> None:
        self._runtime = runtime
        self._root: Path = runtime.bucket.root
        self._last_seen: dict[str, Signature] = {}

    def scan(self) -> list[DropOutcome]:
        """Ingest the files that have not changed since the last scan; remember the others."""
        current = self._complete_files()
        settled_before = time.time_ns() - int(SETTLE_S * 1e9)
        ready = sorted(
            key
            for key, signature in current.items()
            if self._last_seen.get(key) == signature and signature[1] <= settled_before
        )
        self._last_seen = {key: signature for key, signature in current.items() if key not in ready}
        return [self._ingest(key, current[key]) for key in ready]

    def _complete_files(self) -> dict[str, Signature]:
        found: dict[str, Signature] = {}
        for folder, dirs, files in os.walk(self._root / INCOMING_PREFIX):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith(".") or name.endswith(PARTIAL_SUFFIXES):
                    continue
                path = os.path.join(folder, name)
                if (signature := _signature(path)) is not None:
                    found[os.path.relpath(path, self._root).replace(os.sep, "/")] = signature
        return found

    def _ingest(self, key: str, signature: Signature) -> DropOutcome:
        size, mtime_ns = signature
        drop = ObjectDrop(self._runtime.bucket.name, key, None, f"{size}-{mtime_ns}")
        outcome = ingest_drop(drop, self._runtime)
        log.info(
            "file %s: %s, %d events in %d batches",
            key,
            outcome.status,
            outcome.summary.received,
            outcome.summary.batches,
        )
        if outcome.status == "missing":
            return outcome
        if _signature(self._root / key) != signature:
            log.warning("file %s changed while it was read; it is read again as a new version", key)
        else:
            self._move_to_processed(key)
        return outcome

    def _move_to_processed(self, key: str) -> None:
        target = self._root / PROCESSED_PREFIX / key.removeprefix(INCOMING_PREFIX)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._root / key, target)
        except OSError as exc:  # read again at the next scan: its batches are stored, nothing counts twice
            log.error("cannot move %s to %s: %s", key, PROCESSED_PREFIX, exc)

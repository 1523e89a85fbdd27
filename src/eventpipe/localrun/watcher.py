"""File drops: files that appear under `<data dir>/bucket/incoming/` go the way of an S3 notification.

Hand a file over complete: write it elsewhere, or under a name that starts with a dot or ends in
`.tmp`, `.part` or `.partial` (the watcher skips those), then rename it into `incoming/` (a rename
is atomic). As a safety net for copies, a file is taken only once it has not been modified for
`SETTLE_S` seconds (checked in two scans); a writer that appends in place is not safe.

Its batch ids come from its key, size and modification time, like an S3 object version: a file
read again after a crash finishes what is missing and counts nothing twice. Each file is read once,
then leaves `incoming/`: to `processed/` once its batches are stored, to `rejected/` when it was
refused as a whole (a gzip bomb, a broken gzip stream, a JSON document over its size limit: the
events read before the refusal stay ingested). A file that changed while it was read is not read
again: what was written to it after the read is not read, which is logged as an error, and the
whole file moves on all the same. A file replaced by another under the same name (a rename) while
it was read stays: the new one is read as a new file.

Entries that are not regular files (FIFOs, sockets, links that lead to no file) and names that are
not UTF-8 move to `rejected/` unread. One file's problem never stops the others: a file that failed
is tried again a minute later. Only a failure of the stores (`StorageError`) leaves `scan`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

from eventpipe.core.batch_ids import folder_etag
from eventpipe.core.errors import ObjectNotFoundError, StorageError
from eventpipe.core.utf8 import is_utf8_text
from eventpipe.handlers.drops import INCOMING_PREFIX, DropOutcome, ObjectDrop, ingest_drop
from eventpipe.handlers.services import ReadableBucket, Services

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from eventpipe.adapters.local.bucket import Entry, Version

log = logging.getLogger(__name__)
PROCESSED_PREFIX = "processed/"
REJECTED_PREFIX = "rejected/"
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial")
SETTLE_S = 2.0
RETRY_S = 60.0
HOW_TO_WRITE = (
    "write a file elsewhere, or under a name that starts with '.' or ends in .tmp, .part or .partial, "
    "then rename it into incoming/ once it is complete"
)


class WatchedBucket(ReadableBucket, Protocol):
    """The bucket port, plus what watching a folder needs: every entry with its version, and a move."""

    def entries(self, prefix: str) -> Iterator[Entry]: ...

    def entry(self, key: str) -> Entry: ...

    def move(self, key: str, new_key: str) -> None: ...


class WatchedServices(Services, Protocol):
    @property
    def bucket(self) -> WatchedBucket: ...


def _shown(key: str) -> str:
    """The key as printable text: undecodable bytes of a name as `\\xff`."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class DropWatcher:
    """The files dropped into `incoming/` of the local bucket, read one `scan` at a time (the worker
    scans every half second). `monotonic` times the retries (tests pass a clock of their own)."""

    def __init__(self, runtime: WatchedServices, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._runtime = runtime
        self._bucket = runtime.bucket
        self._monotonic = monotonic
        self._last_seen: dict[str, Version] = {}
        self._retry_at: dict[str, float] = {}  # files that failed: not tried again before then
        self._unmoved: dict[str, str] = {}  # entries done with that could not leave incoming/: their prefix

    def scan(self) -> list[DropOutcome]:
        """Ingest the files that have not changed since the last scan; remember the others.

        Never raises for one file's problem (it is logged, and the file tried again a minute
        later); a failure of the stores raises `StorageError`, and the next scans go on from there.
        """
        now = self._monotonic()
        current = self._regular_files()
        settled_before = time.time_ns() - int(SETTLE_S * 1e9)
        ready = sorted(
            key
            for key, signature in current.items()
            if self._last_seen.get(key) == signature
            and signature[2] <= settled_before
            and self._retry_at.get(key, now) <= now
        )
        self._last_seen = {key: signature for key, signature in current.items() if key not in ready}
        self._retry_at = {key: at for key, at in self._retry_at.items() if key in current and at > now}
        outcomes = []
        for key in ready:
            if (outcome := self._read(key, current[key], now)) is not None:
                outcomes.append(outcome)
        return outcomes

    def _regular_files(self) -> dict[str, Version]:
        """The regular files of `incoming/` to consider; every other entry is moved to `rejected/`."""
        found: dict[str, Version] = {}
        listed: set[str] = set()
        for entry in self._bucket.entries(INCOMING_PREFIX):
            key = entry.key
            name = key.rpartition("/")[2]
            if name.startswith(".") or name.endswith(PARTIAL_SUFFIXES):
                continue
            listed.add(key)
            if key in self._unmoved:
                self._move(key, self._unmoved[key])
            elif not is_utf8_text(key):
                self._move(key, REJECTED_PREFIX, "its name is not valid UTF-8 (give it a UTF-8 name)")
            elif entry.kind is None or entry.version is None:
                continue  # gone since it was listed
            elif entry.kind != "file":
                self._move(key, REJECTED_PREFIX, f"it is {entry.kind}, not a regular file")
            else:
                found[key] = entry.version
        self._unmoved = {key: prefix for key, prefix in self._unmoved.items() if key in listed}
        return found

    def _read(self, key: str, signature: Version, now: float) -> DropOutcome | None:
        """`_ingest` one file; a failure of its own is logged, and the file left for a minute."""
        try:
            with self._bucket.open(key):  # the file's own faults show here, before a store is used
                pass
        except ObjectNotFoundError:
            return None  # gone since it was listed
        except StorageError as exc:  # unreadable, or no longer a regular file
            log.error("file %s cannot be read (tried again in %.0f s): %s", key, RETRY_S, exc)
            self._retry_at[key] = now + RETRY_S
            return None
        try:
            return self._ingest(key, signature)
        except StorageError:
            raise  # the stores failed, not this file
        except Exception:
            log.exception("file %s could not be ingested (tried again in %.0f s)", key, RETRY_S)
            self._retry_at[key] = now + RETRY_S
            return None

    def _ingest(self, key: str, signature: Version) -> DropOutcome:
        inode, size, mtime_ns = signature
        drop = ObjectDrop(self._bucket.name, key, None, folder_etag(size, mtime_ns))
        outcome = ingest_drop(drop, self._runtime)
        log.info(
            "file %s: %s, %d events in %d batches",
            key,
            outcome.status,
            outcome.summary.received,
            outcome.summary.batches,
        )
        after = self._bucket.entry(key).version
        if outcome.status == "missing" or after is None:
            return outcome
        if after[0] != inode:
            log.warning("file %s was replaced while it was read; the new file is read as a new one", key)
            return outcome
        if after != signature:
            log.error(
                "file %s changed while it was read: what was written to it after the read was not read "
                "(the whole file moves to %s); %s",
                key,
                REJECTED_PREFIX if outcome.status == "refused" else PROCESSED_PREFIX,
                HOW_TO_WRITE,
            )
        if outcome.status == "refused":
            self._move(key, REJECTED_PREFIX, outcome.error or "refused")
        else:
            self._move(key, PROCESSED_PREFIX)
        return outcome

    def _move(self, key: str, prefix: str, refused: str | None = None) -> None:
        """Move an entry out of `incoming/`, with an error saying why when it is `refused`. One that
        cannot move is remembered and logged once: it is moved at a later scan, never read again."""
        why = f"refused ({refused}) but" if refused else "read, but it"
        try:
            self._bucket.move(key, prefix + key.removeprefix(INCOMING_PREFIX))
        except ObjectNotFoundError:
            self._unmoved.pop(key, None)  # gone already
        except StorageError as exc:
            if key not in self._unmoved:
                log.error("%s %s cannot move to %s, so it stays (not read again): %s", _shown(key), why, prefix, exc)
            self._unmoved[key] = prefix
        else:
            if self._unmoved.pop(key, None) is not None:
                log.info("moved %s to %s at last", _shown(key), prefix)
            elif refused:
                log.error("%s refused, moved to %s: %s", _shown(key), prefix, refused)

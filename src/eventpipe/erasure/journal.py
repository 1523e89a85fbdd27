"""Pending erasures, kept across a crash, and the log of finished ones.

    <data dir>/erasures/pending-<id>.json   the ids to erase, while the erasure runs
    <data dir>/erasures/log.ndjson          one line per finished erasure: time and counts, no id

A pending entry holds the ids in clear, for as long as the erasure runs: it is deleted when the
erasure finishes, and a process that starts (`eventpipe up`'s worker, `ingest`, `replay`, `erase`)
finishes any entry a crash left before it processes anything else. While an erasure runs, its
entry is locked (flock), so no other process takes it for an abandoned one.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from eventpipe.adapters.local.files import fsync_folder
from eventpipe.core.errors import StorageError
from eventpipe.core.timeutil import to_iso

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

LOG_NAME = "log.ndjson"


@dataclass
class PendingErasure:
    path: Path
    user_ids: list[str]
    anonymous_ids: list[str]
    started_ms: int
    _fd: int = -1

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ErasureJournal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def begin(self, user_ids: list[str], anonymous_ids: list[str], now_ms: int) -> PendingErasure:
        """Record the erasure durably before any store changes, and hold it."""
        document = {"user_ids": user_ids, "anonymous_ids": anonymous_ids, "started_ms": now_ms}
        path = self.folder / f"pending-{uuid.uuid4().hex}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, orjson.dumps(document))
            os.fsync(fd)
            fsync_folder(self.folder)
        except OSError as exc:
            raise StorageError(f"cannot record the erasure in {self.folder}: {exc}") from exc
        return PendingErasure(path, user_ids, anonymous_ids, now_ms, fd)

    def abandoned(self) -> Iterator[PendingErasure]:
        """Pending erasures no running process holds (a crash left them), each held once yielded."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("pending-*.json")):
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:  # finished meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                document = orjson.loads(path.read_bytes())
            except (BlockingIOError, FileNotFoundError):  # running in another process
                os.close(fd)
                continue
            except (OSError, orjson.JSONDecodeError):  # cut short before its fsync: nothing was erased yet
                os.close(fd)
                path.unlink(missing_ok=True)
                continue
            yield PendingErasure(
                path, list(document["user_ids"]), list(document["anonymous_ids"]), int(document["started_ms"]), fd
            )

    def finish(self, pending: PendingErasure, *, events_erased: int, files_rewritten: int, now_ms: int) -> None:
        """Log the erasure (time and counts; an erasure that found nothing changed nothing and is not
        logged here) and delete its pending entry."""
        try:
            if events_erased or files_rewritten:
                line = {
                    "started_at": to_iso(pending.started_ms),
                    "finished_at": to_iso(now_ms),
                    "events_erased": events_erased,
                    "files_rewritten": files_rewritten,
                }
                with (self.folder / LOG_NAME).open("ab") as log:
                    log.write(orjson.dumps(line) + b"\n")
                    log.flush()
                    os.fsync(log.fileno())
            pending.path.unlink(missing_ok=True)
            fsync_folder(self.folder)
            if not any(self.folder.iterdir()):  # an erasure that found nothing leaves no trace either
                self.folder.rmdir()
        except OSError as exc:
            raise StorageError(f"cannot finish the erasure record in {self.folder}: {exc}") from exc
        finally:
            pending.release()

    def has_pending(self) -> bool:
        return self.folder.is_dir() and any(self.folder.glob("pending-*.json"))

"""One process drives a data directory's batches at a time: an `flock` on `<data dir>/eventpipe.lock`.

`eventpipe up` holds it for its whole life, so a second `up` on the same directory refuses to start
(two workers would each run nearly every batch). `eventpipe ingest` and `eventpipe replay` hold it
while they run batches themselves; beside a running `up` they hand their batches to its worker
instead. The lock file says who holds it (`eventpipe up (pid 1234, http://127.0.0.1:8080/)`), so the
refusal can name the process. The kernel releases an `flock` when its holder dies, even by `kill -9`:
a crash never leaves the directory locked. The worker process is spawned, so it does not inherit the
descriptor and a worker outliving its server never keeps the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import TYPE_CHECKING

from eventpipe.core.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

LOCK_NAME = "eventpipe.lock"
UP = "eventpipe up"
_DESCRIBE_WAIT_S = 1.0  # a holder writes its description right after taking the lock


class DataDirLock:
    """A held lock on a data directory; `release()` (or the process's end) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def try_acquire(cls, data_dir: Path, holder: str) -> DataDirLock | None:
        """The lock, described as held by `holder` and this pid; None when another process holds it."""
        path = data_dir / LOCK_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot use the data directory {data_dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        lock = cls(path, fd)
        lock.describe(holder)
        return lock

    def describe(self, holder: str, detail: str = "") -> None:
        """Write who holds the lock, for the message of a process that finds it taken."""
        text = f"{holder} (pid {os.getpid()}{', ' + detail if detail else ''})\n".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text, 0)

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = -1


def holder_of(data_dir: Path) -> str:
    """Who holds the lock of `data_dir`, as its holder described itself ("" if it has not yet)."""
    deadline = time.monotonic() + _DESCRIBE_WAIT_S
    while True:
        try:
            text = (data_dir / LOCK_NAME).read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        if text or time.monotonic() >= deadline:
            return text
        time.sleep(0.05)

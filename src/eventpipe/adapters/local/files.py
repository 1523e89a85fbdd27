"""Whole-file writes on one machine: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

TMP_PREFIX = ".tmp-"  # a file being written; listings skip these, and a crash may leave one behind


def write_atomically(path: Path, write: Callable[[IO[bytes]], object], *, durable: bool = True) -> None:
    """Let `write` fill a temporary file beside `path`, then rename it to `path`; OSError as raised.

    `durable` also syncs the file before the rename and the folder after it, so that the new file
    survives a power loss once this returns.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:  # make the rename itself durable
        fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make the names created, renamed or removed in `folder` durable (a file's own fsync does not)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

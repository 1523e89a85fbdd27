"""Whole-file writes on one machine: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
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

    def fill(fd: int) -> None:
        with os.fdopen(fd, "wb", closefd=False) as handle:  # closed (flushed) here, the descriptor later
            write(handle)

    _replace_with(path, fill, durable=durable)


def write_bytes_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """`write_atomically` for bytes already in memory (the raw bucket's objects and the curated
    segments, two a batch): written straight to the descriptor, no buffered file object between."""

    def fill(fd: int) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    _replace_with(path, fill, durable=durable)


def _replace_with(path: Path, fill: Callable[[int], None], *, durable: bool) -> None:
    """A temporary file beside `path`, filled by `fill(fd)`, synced when `durable`, renamed to `path`.
    Fewer calls than `mkstemp` and `mkdir` each time (the folder is made only when missing): 0.5 ->
    0.4 ms of CPU for a 300 KB object here."""
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{os.urandom(8).hex()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600)  # as mkstemp: readable by the owner only
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, flags, 0o600)
    try:
        try:
            fill(fd)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:  # make the rename itself durable
        fsync_folder(Path(folder))


def fsync_folder(folder: Path) -> None:
    """Make the names created, renamed or removed in `folder` durable (a file's own fsync does not)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

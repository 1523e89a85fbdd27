"""A folder that behaves like the raw S3 bucket: keys are relative paths, writes are atomic."""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from eventpipe.adapters.local.files import TMP_PREFIX, write_bytes_atomically
from eventpipe.core.errors import ObjectNotFoundError, StorageError

if TYPE_CHECKING:
    from collections.abc import Iterator

# The folders made with the bucket. Not `staged/`: only earlier versions wrote there (core/rawbatch.py),
# and a folder is made by the first object put in it.
PREFIXES = ("incoming/", "raw/", "rejected/")

Version = tuple[int, int, int]  # inode, size, modification time in ns: one content of a key, as an S3 ETag


@dataclass(frozen=True)
class Entry:
    """A name under a prefix of the folder, as a listing finds it (the file watcher reads these)."""

    key: str
    kind: str | None  # "file" for a regular file, else what it is ("a FIFO", ...); None once gone
    version: Version | None = None


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISLNK: "a link that leads to no file"}
    return next((name for test, name in kinds.items() if test(mode)), "a device or other special file")


def _stat(path: Path | str) -> os.stat_result | None:
    """What `path` is, following links; a link to nothing is itself. None once it is gone."""
    try:
        return os.stat(path)
    except OSError:
        try:
            return os.lstat(path)
        except OSError:
            return None


def _file_keys(folder: str, under: str, prefix: str) -> Iterator[str]:
    """The keys starting with `prefix` of the regular files below `folder` (whose key is `under`): a
    link to a file counts, a link to a folder is not followed, as `Path.is_file` and `rglob` do. One
    scandir a folder, and none in a folder that holds no such key: the worker lists every group's raw
    batch as it starts (localrun/runtime.py), 100,000 of them in about a second, not four with rglob."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError, PermissionError):  # gone meanwhile, or not ours to read
        return
    for entry in entries:
        key = under + entry.name
        if entry.is_dir(follow_symlinks=False):
            if f"{key}/".startswith(prefix) or prefix.startswith(f"{key}/"):
                yield from _file_keys(entry.path, f"{key}/", prefix)
        elif key.startswith(prefix) and not entry.name.startswith(TMP_PREFIX) and entry.is_file():
            yield key


class FolderBucket:
    def __init__(self, root: Path, prefixes: tuple[str, ...] = PREFIXES) -> None:
        self.root = root
        self.name = str(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            for prefix in prefixes:
                (root / prefix).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot use {root} as the bucket folder: {exc}") from exc

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Write to a temporary file, then rename: a reader never sees half an object."""
        path = self._path(key)
        try:
            write_bytes_atomically(path, data, durable=durable)
        except OSError as exc:
            raise StorageError(f"cannot write {key}: {exc}") from exc

    def get(self, key: str) -> bytes:
        with self.open(key) as stream:
            try:
                return stream.read()
            except OSError as exc:
                raise StorageError(f"cannot read {key}: {exc}") from exc

    def mapped(self, key: str, *, min_bytes: int = 0) -> mmap.mmap | bytes:
        """The object's bytes, as a read-only map of its file: for a large object read once (the lake
        writer's segments). A read copies the file into fresh pages, a fault each (a quarter of a
        microsecond per curated event); a map takes the page cache's pages as they are. Objects
        are replaced by a rename, never written in place, so the map keeps the bytes it was made
        with. A map holds a file descriptor for as long as it (or a view of it) lives. A file of
        fewer than `min_bytes` is read instead (a map costs more for it), and one of no bytes,
        which cannot be mapped, is b""."""
        with self.open(key) as stream:
            try:
                size = os.fstat(stream.fileno()).st_size
                if size == 0 or size < min_bytes:
                    return stream.read()
                return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
            except OSError as exc:
                raise StorageError(f"cannot read {key}: {exc}") from exc

    def open(self, key: str, version_id: str | None = None) -> IO[bytes]:
        """A buffered stream of the object; a folder keeps one version, so `version_id` is not used.

        Only a regular file is an object: anything else under the key (a FIFO, a socket, a device, a
        folder) raises `StorageError`. It is opened without blocking, so a FIFO with no writer cannot
        hold the caller (the file watcher, an S3 event sent to the Invoke API) forever.
        """
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"{key} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc}") from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StorageError(f"cannot read {key}: not a regular file (a folder, FIFO, socket or device)")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")  # buffered; the caller closes it
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot read {key}: {exc}") from exc
        except BaseException:
            os.close(fd)
            raise

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key}: {exc}") from exc

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key that starts with `prefix` (a string prefix, as in S3), in string order."""
        folder, _, _ = prefix.rpartition("/")
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return
        under = "" if base == self.root else f"{base.relative_to(self.root).as_posix()}/"
        yield from sorted(_file_keys(str(base), under, prefix))

    def entries(self, prefix: str) -> Iterator[Entry]:
        """Every name under the folder `prefix` (hidden folders skipped), whatever it is: regular files
        with their version, and the FIFOs, sockets, devices and dangling links a folder can hold too."""
        for folder, dirs, files in os.walk(self._path(prefix)):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = os.path.join(folder, name)
                yield self._entry(os.path.relpath(path, self.root).replace(os.sep, "/"), path)

    def entry(self, key: str) -> Entry:
        """What is under `key` now (`kind` None when nothing is)."""
        return self._entry(key, self._path(key))

    def move(self, key: str, new_key: str) -> None:
        """Rename an entry, whatever it is, to `new_key` (its folders made as needed): atomic, as a rename is.

        `ObjectNotFoundError` when nothing is under `key`; `StorageError` when it cannot move.
        """
        target = self._path(new_key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._path(key), target)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"{key} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot move {key} to {new_key}: {exc}") from exc

    @staticmethod
    def _entry(key: str, path: Path | str) -> Entry:
        found = _stat(path)
        if found is None:
            return Entry(key, None)
        return Entry(key, _kind(found.st_mode), (found.st_ino, found.st_size, found.st_mtime_ns))

    def _path(self, key: str) -> Path:
        parts = Path(key).parts
        if not parts or Path(key).is_absolute() or ".." in parts or "\0" in key:
            raise StorageError(f"invalid object key {key!r}")
        return self.root / key

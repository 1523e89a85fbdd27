"""Parquet files of the lake, written whole and renamed into place (a reader never sees half a file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from eventpipe.core.errors import StorageError
from eventpipe.lake.columns import LAKE_SCHEMA

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

COMPRESSION = "zstd"
TMP_PREFIX = ".tmp-"


def write_parquet(path: Path, table: pa.Table) -> int:
    """Write `table` durably at `path` (temporary file, fsync, rename, fsync of the folder); its size."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                pq.write_table(table, handle, compression=COMPRESSION)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return path.stat().st_size
    except OSError as exc:
        raise StorageError(f"cannot write the lake file {path}: {exc}") from exc


def read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path, schema=LAKE_SCHEMA)
    except OSError as exc:
        raise StorageError(f"cannot read the lake file {path}: {exc}") from exc


def files_on_disk(root: Path) -> Iterator[str]:
    """Every file under the lake folder but its lock, relative to it (temporary files included)."""
    if not root.is_dir():
        return
    for path in root.rglob("*"):
        if path.is_file() and path.name != ".lock":
            yield path.relative_to(root).as_posix()


def remove(root: Path, relative: str) -> None:
    try:
        (root / relative).unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot delete the lake file {relative}: {exc}") from exc

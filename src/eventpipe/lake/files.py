"""Parquet files of the lake, written whole and renamed into place (a reader never sees half a file)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventpipe.adapters.local.files import write_atomically
from eventpipe.core.errors import StorageError
from eventpipe.lake.columns import LAKE_SCHEMA
from eventpipe.lake.parquet import write_table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import pyarrow as pa


def write_parquet(path: Path, table: pa.Table) -> int:
    """Write `table` durably at `path` (temporary file, fsync, rename, fsync of the folder); its size."""
    try:
        write_atomically(path, lambda handle: write_table(table, handle))
        return path.stat().st_size
    except OSError as exc:
        raise StorageError(f"cannot write the lake file {path}: {exc}") from exc


def read_parquet(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq  # to read only: the writer does without it (parquet.py)

    try:
        return pq.read_table(path, schema=LAKE_SCHEMA)
    except (OSError, pa.ArrowException) as exc:  # gone, or not Parquet (damaged, cut short)
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

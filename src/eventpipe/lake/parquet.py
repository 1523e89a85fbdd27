"""Lake tables as Parquet bytes (zstd), for object stores that take whole objects (S3)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from eventpipe.lake.columns import LAKE_SCHEMA

COMPRESSION = "zstd"


def to_parquet(table: pa.Table) -> bytes:
    """`table` as one Parquet file's bytes, zstd-compressed, in one row group per 1M rows."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression=COMPRESSION, row_group_size=1_000_000)
    return sink.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    """A lake file's bytes as a table of `LAKE_SCHEMA` (raises `pa.ArrowInvalid` if they are not Parquet)."""
    return pq.read_table(io.BytesIO(data), schema=LAKE_SCHEMA)

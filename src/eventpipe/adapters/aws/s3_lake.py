"""The AWS lake's layout in the analytics bucket: Parquet (zstd), Hive-partitioned by event time.

    events/dt=2026-11-28/hour=06/s-<sequence>-<event id>.parquet   a stream batch's events of that hour
    events/dt=2026-11-28/hour=06/c-<uuid>.parquet                  a compaction of such objects
    events/dt=2026-11-28/hour=06/b-<batch_id>.parquet              written by ProcessBatch before the
                                                                   stream writer (read and compacted still)
    lake-unreadable/<sequence>-<event id>.json                     stream records that made no row

`write_lake` writes the `s-` objects from the curated table's stream (lake_stream.py); the compaction
merges them (lake_compaction.py). The columns are the local lake's (`eventpipe.lake.columns`): one Glue
table reads every object.
"""

from __future__ import annotations

LAKE_PREFIX = "events/"
BATCH_FILE_PREFIX = "b-"
STREAM_FILE_PREFIX = "s-"
COMPACTED_FILE_PREFIX = "c-"
UNREADABLE_PREFIX = "lake-unreadable/"


def stream_file_key(partition: str, sequence: str, event_key: str) -> str:
    """`events/dt=.../hour=.../s-<sequence>-<event id>.parquet`: a stream batch's events of one hour,
    named after the first of its records that falls in that hour (lake_stream.py says why)."""
    return f"{LAKE_PREFIX}{partition}/{STREAM_FILE_PREFIX}{sequence}-{event_key}.parquet"


def unreadable_key(sequence: str, event_key: str) -> str:
    return f"{UNREADABLE_PREFIX}{sequence}-{event_key}.json"

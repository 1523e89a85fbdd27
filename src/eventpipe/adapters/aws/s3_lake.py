"""The lake on AWS: each batch's newly curated events as Parquet (zstd) in the analytics bucket.

    events/dt=2026-11-28/hour=06/b-<batch_id>.parquet    the events of one batch in that hour
    events/dt=2026-11-28/hour=06/c-<uuid>.parquet        a compaction of such files (lake_compaction.py)

ProcessBatch writes a batch's files after the curated store has said which of its events are new,
and before the batch can be done. The key is the batch's, so a retried step (or a second Express
execution of the batch) writes the same objects again in place: the curated store answers "new"
again for a batch's own events, never for an event another batch stored. A redelivered or replayed
event is a duplicate there, and so never written twice. The columns are the local lake's
(`eventpipe.lake.columns`): one Glue table reads both layouts' files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eventpipe.core.ports import RawBucket

LAKE_PREFIX = "events/"
BATCH_FILE_PREFIX = "b-"
COMPACTED_FILE_PREFIX = "c-"


def batch_file_key(partition: str, batch_id: str) -> str:
    """`events/dt=.../hour=.../b-<batch_id>.parquet`: where a batch's events of one hour go."""
    return f"{LAKE_PREFIX}{partition}/{BATCH_FILE_PREFIX}{batch_id}.parquet"


class S3EventLake:
    """The `EventLake` port over the analytics bucket."""

    def __init__(self, bucket: RawBucket) -> None:
        self._bucket = bucket

    def add(self, batch_id: str, payloads: Sequence[bytes]) -> None:
        # Imported at the first batch, not at the container's start: pyarrow takes about 0.2 s to load.
        from eventpipe.lake.columns import LakeRows
        from eventpipe.lake.parquet import to_parquet

        rows = LakeRows()
        for payload in payloads:
            rows.add(payload, batch_id)
        for partition, table in rows.tables().items():
            self._bucket.put(batch_file_key(partition, batch_id), to_parquet(table))

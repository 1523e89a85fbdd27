"""Compaction of the AWS lake: an hour's small Parquet objects merged into one, each event kept once.

`write_lake` writes one object per stream batch and hour (lake_stream.py): at 100 events/s about two
a minute per stream shard, and Athena pays per object it opens. A scheduled run merges, for each
hour, its small objects (`SMALL_BYTES`) into `c-<uuid>.parquet`
(sorted by `occurred_at`) once the hour has ended an hour ago, or sooner when it holds
`COMPACT_AT_OBJECTS` of them; at most `MAX_INPUT_BYTES` go into one merged object.

Each event stays in the lake once:
- an object is merged only once no write of it can still come: a `write_lake` object (`s-`) past
  `STREAM_MIN_AGE_S`, the time a failing stream batch can be delivered again (the stream keeps its
  records 24 hours); so hours are merged a day after they end. A `b-` object (ProcessBatch wrote the
  lake before `write_lake` did) past `MIN_AGE_S`, and only once its batch is finished: a batch that is
  pending or failed may run again (a restart, an operator's replay) and would write its object again
  beside the merged copy; a finished one never runs again.
- a merge is journalled first (`lake-compaction/<id>.json`, outside `events/`: no table reads it),
  then the merged object is written, then its inputs are deleted, then the journal. A run killed
  midway is finished by the next: a journal whose merged object exists has its inputs deleted; one
  without it is dropped (nothing was changed).

The erasure rewrites lake objects too: a run takes the lake's lease first (lake_lease.py) and skips
when the erasure holds it; it checks the lease before each merge and stops, releasing it, once an
erasure waits for it.

What S3 cannot give is an atomic swap of several objects: a query that lists an hour between the
merged object's write and its inputs' delete (one DeleteObjects call) may count those events
twice, and one that lists before and reads after may fail (HIVE_CANNOT_OPEN_SPLIT) and must be run
again. Hence merging closed hours only, unless an hour is crowded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import orjson

from eventpipe.adapters.aws.errors import AWS_ERRORS, error_code, storage_error
from eventpipe.adapters.aws.s3 import MISSING_CODES
from eventpipe.adapters.aws.s3_lake import (
    BATCH_FILE_PREFIX,
    COMPACTED_FILE_PREFIX,
    LAKE_PREFIX,
    STREAM_FILE_PREFIX,
)
from eventpipe.core.errors import StorageError
from eventpipe.lake.columns import hour_closed

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa
    from mypy_boto3_s3.client import S3Client

    from eventpipe.adapters.aws.lake_lease import LakeLease
    from eventpipe.core.ports import BatchStore, Clock

JOURNAL_PREFIX = "lake-compaction/"
SMALL_BYTES = 32 * 1024 * 1024
MAX_INPUT_BYTES = 256 * 1024 * 1024
COMPACT_AT_OBJECTS = 64
MIN_AGE_S = 15 * 60  # past ProcessBatch's timeout and a workflow's retries: no attempt still writes
# write_lake's objects: a stream batch is delivered again (and rewrites its objects) until it succeeds or
# its records leave the stream, 24 hours after they were written; the last rewrite is at most that long after
# the first. Past it, and write_lake's timeout, no retry can write an object beside its merged copy.
STREAM_MIN_AGE_S = 24 * 3600 + 15 * 60


@dataclass(frozen=True, slots=True)
class LakeObject:
    key: str
    size: int
    modified_ms: int

    @property
    def partition(self) -> str:
        """`dt=2026-11-28/hour=06`."""
        return self.key[len(LAKE_PREFIX) :].rsplit("/", 1)[0]

    @property
    def min_age_s(self) -> int:
        """How old the object must be before it is merged: past any write of it that may still come."""
        name = self.key.rsplit("/", 1)[1]
        return STREAM_MIN_AGE_S if name.startswith(STREAM_FILE_PREFIX) else MIN_AGE_S

    @property
    def batch_id(self) -> str | None:
        name = self.key.rsplit("/", 1)[1]
        if not name.startswith(BATCH_FILE_PREFIX):
            return None
        return name[len(BATCH_FILE_PREFIX) :].removesuffix(".parquet")


class CompactionAnswer(TypedDict):
    """What `compact_lake` answers: objects merged, merged objects written, their events, journals finished."""

    merged_objects: int
    written_objects: int
    events: int
    journals_finished: int
    skipped: bool  # an erasure held the lake's lease: nothing done, the next run merges


@dataclass(frozen=True, slots=True)
class CompactionResult:
    merged_objects: int = 0
    written_objects: int = 0
    events: int = 0
    journals_finished: int = 0
    skipped: bool = False

    def as_dict(self) -> CompactionAnswer:
        return {
            "merged_objects": self.merged_objects,
            "written_objects": self.written_objects,
            "events": self.events,
            "journals_finished": self.journals_finished,
            "skipped": self.skipped,
        }


class S3LakeCompactor:
    def __init__(self, bucket: str, client: S3Client, batches: BatchStore, clock: Clock, lease: LakeLease) -> None:
        self._bucket = bucket
        self._client = client
        self._batches = batches
        self._clock = clock
        self._lease = lease

    def compact(self, *, max_merges: int = 50) -> CompactionResult:
        """Under the lake's lease (skipped while an erasure holds it): finish interrupted merges, then
        merge the small objects of closed or crowded hours."""
        if not self._lease.take():
            return CompactionResult(skipped=True)
        try:
            return self._compact(max_merges)
        finally:
            self._lease.release()

    def _compact(self, max_merges: int) -> CompactionResult:
        finished = self.finish_journals()
        now_ms = self._clock.now_ms()
        by_hour: dict[str, list[LakeObject]] = {}
        # The whole lake is listed, so a backfill of old days is compacted too: once compacted, an
        # hour is one object, and a year of hours is 9 LIST calls a run.
        for item in self._list(LAKE_PREFIX):
            if item.size < SMALL_BYTES and item.modified_ms <= now_ms - item.min_age_s * 1000:
                by_hour.setdefault(item.partition, []).append(item)
        unfinished = {record.batch_id for record in self._batches.unfinished()} if by_hour else set()
        merged = written = events = 0
        for partition, items in sorted(by_hour.items()):
            ready = [item for item in items if item.batch_id not in unfinished]
            if len(ready) < 2 or (len(ready) < COMPACT_AT_OBJECTS and not hour_closed(partition, now_ms)):
                continue
            for group in _groups(ready):
                if written >= max_merges or not self._lease.still_mine():  # an erasure waits for the lake
                    return CompactionResult(merged, written, events, finished)
                events += self._merge(partition, group)
                merged += len(group)
                written += 1
        return CompactionResult(merged, written, events, finished)

    def finish_journals(self) -> int:
        """Complete (or drop) the merges a killed run left; how many journals there were."""
        count = 0
        for item in self._list(JOURNAL_PREFIX):
            journal = orjson.loads(self._get(item.key))
            if self._exists(journal["output"]):
                self._delete([str(key) for key in journal["inputs"]])
            self._delete([item.key])
            count += 1
        return count

    def _merge(self, partition: str, group: list[LakeObject]) -> int:
        import pyarrow as pa

        from eventpipe.lake.parquet import from_parquet, to_parquet

        output = f"{LAKE_PREFIX}{partition}/{COMPACTED_FILE_PREFIX}{uuid.uuid4().hex}.parquet"
        journal = f"{JOURNAL_PREFIX}{uuid.uuid4().hex}.json"
        inputs = [item.key for item in group]
        self._put(journal, orjson.dumps({"output": output, "inputs": inputs}))
        table = once_each(pa.concat_tables([from_parquet(self._get(key)) for key in inputs]))
        table = table.sort_by([("occurred_at", "ascending")])
        self._put(output, to_parquet(table))
        self._delete(inputs)
        self._delete([journal])
        return int(table.num_rows)

    def _list(self, prefix: str) -> Iterator[LakeObject]:
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    modified = int(item["LastModified"].timestamp() * 1000)
                    yield LakeObject(item["Key"], int(item["Size"]), modified)
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot list s3://{self._bucket}/{prefix}") from exc

    def _get(self, key: str) -> bytes:
        try:
            return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot read s3://{self._bucket}/{key}") from exc

    def _put(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data)
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot write s3://{self._bucket}/{key}") from exc

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except AWS_ERRORS as exc:
            if error_code(exc) in MISSING_CODES:
                return False
            raise storage_error(exc, f"cannot read s3://{self._bucket}/{key}") from exc
        return True

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys a call
            chunk: Any = [{"Key": key} for key in keys[start : start + 1000]]
            try:
                answer = self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": chunk, "Quiet": True})
            except AWS_ERRORS as exc:
                raise storage_error(exc, f"cannot delete objects in s3://{self._bucket}") from exc
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise StorageError(f"cannot delete s3://{self._bucket}/{first.get('Key')}: {first.get('Code')}")


def once_each(table: pa.Table) -> pa.Table:
    """`table` with one row per event id (compared in lower case, as the curated table keys them).

    Nothing written as designed puts an event in two objects; this keeps a merge from carrying one
    that got there otherwise: a stack upgraded while ProcessBatch still wrote the lake (its `b-`
    object and write_lake's `s-` object hold the deploy's minutes twice), an operator's copy.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows < 2:
        return table
    ids = pc.utf8_lower(table.column("event_id")).combine_chunks()
    order = pc.sort_indices(ids)
    ordered = ids.take(order)
    # a row whose id equals the one before it (in id order) repeats an event: left out
    repeated = pc.fill_null(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1)), False)
    drop = pa.concat_arrays([pa.array([False]), repeated])
    if not pc.any(drop).as_py():
        return table
    kept = order.filter(pc.invert(drop))  # the first row of each id, in id order
    return table.take(kept.take(pc.sort_indices(kept)))  # in the table's order


def _groups(items: list[LakeObject]) -> Iterator[list[LakeObject]]:
    """The hour's objects, oldest first, in groups of at most `MAX_INPUT_BYTES` (a lone object is left)."""
    group: list[LakeObject] = []
    size = 0
    for item in sorted(items, key=lambda i: (i.modified_ms, i.key)):
        if group and size + item.size > MAX_INPUT_BYTES:
            if len(group) > 1:
                yield group
            group, size = [], 0
        group.append(item)
        size += item.size
    if len(group) > 1:
        yield group

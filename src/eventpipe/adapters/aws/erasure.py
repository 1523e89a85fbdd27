"""`erase` on AWS: every event of a user leaves the lake, the curated table, the quarantine and the raw bucket.

First a tombstone of the ids (erasure_tombstones.py), then the lake's lease (lake_lease.py: no
compaction merges lake objects while the erasure rewrites them; a running one stops after its current
merge, and the erasure waits for it), then a wait of `write_lake`'s timeout: from
then on the lake's stream writer leaves out the user's events received before the erasure started,
and deletes their curated items, so an event still on its way to the lake (a batch curating it while
the erasure runs, a stream record in a batching window or retried) does not bring it back.

The plan is lake-side, not an index by user: the lake holds every curated event once, so reading
its objects (the `user_id` and `anonymous_id` columns) finds the user's curated events; the
quarantine (a Scan of its records) adds the rejected ones. The raw bucket is read whole: a raw
object can hold the user's line without the lake or the quarantine naming its batch (a replay's own
batch, whose rejections update the first batch's records; a duplicate the pipeline dropped). Then,
in this order:

1. lake objects holding the user's rows are rewritten without them (deleted when nothing is left);
2. the curated items of those events are deleted (BatchWriteItem);
3. the quarantine records are removed (a batch's shared item rewritten without them under its version
   condition, so a replay changing the same item meanwhile neither loses its change nor brings one back);
4. every raw batch holding a matching line is rewritten without the user's lines and without the address
   and user agent of the requests that carried them (erasure/rewrite.py); dropped files in
   `incoming/` and `rejected/`, and `staged/` objects, are read whole and rewritten likewise, and
   so are the stream records write_lake kept in `lake-unreadable/` of the analytics bucket;
5. for every object rewritten or deleted, its earlier versions are deleted too (both buckets keep
   versions); then every other noncurrent version is read, and deleted where it holds a matching event:
   objects the pipeline deleted or overwrote keep their old bytes for the buckets' noncurrent-version
   expiry (7 days) — the stream's `requests/` objects that ingest deletes once grouped, dropped files
   read and deleted, `staged/` objects, lake objects a compaction merged. A version is judged as its
   object's rewrite would be (the same matching), a `requests/` object line by line (each a request
   gzipped and base64-encoded).

Each step is idempotent: an invocation that fails or times out is invoked again, and finishes what the
first left (a lake object already rewritten no longer matches). Aggregates stay: they hold no ids.
Cost: one GetObject per lake object, per raw object and per noncurrent version (all read whole: about
82 MiB of lake per million events, the raw batches kept for the stack's `RawRetentionDays`, and 7 days
of old versions, most of them the request stream's objects), so one invocation handles some tens of GiB
within the 15-minute limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from eventpipe.adapters.aws.dynamodb_calls import batch_delete
from eventpipe.adapters.aws.erasure_tombstones import WRITER_TIMEOUT_S
from eventpipe.adapters.aws.lake_lease import ERASURE_WAIT_S, POLL_S
from eventpipe.adapters.aws.retry import Backoff
from eventpipe.adapters.aws.s3 import S3RawBucket
from eventpipe.adapters.aws.s3_lake import LAKE_PREFIX, UNREADABLE_PREFIX
from eventpipe.core.errors import ObjectNotFoundError, StorageError
from eventpipe.core.rawbatch import RAW_PREFIX
from eventpipe.core.timeutil import to_iso
from eventpipe.erasure import rewrite

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client

    from eventpipe.adapters.aws.erasure_tombstones import ErasureTombstones
    from eventpipe.adapters.aws.lake_lease import LakeLease
    from eventpipe.core.ports import Clock, Quarantine
    from eventpipe.erasure.target import ErasureTarget

DROPPED_PREFIXES = ("incoming/", "rejected/")
STAGED_PREFIX = "staged/"
NOTHING_FOUND = "no event of that user is stored: nothing was changed"  # as `eventpipe erase` says
REQUESTS_PREFIX = "requests/"  # the request stream's objects (handlers/request_objects.py)


class ErasureAnswer(TypedDict):
    """What `erase` answers and logs: its time and counts, never the ids."""

    started_at: str
    finished_at: str
    events_erased: int
    files_rewritten: int
    old_versions_deleted: int  # noncurrent object versions that held the user's events
    note: NotRequired[str]  # when nothing of the ids was found: NOTHING_FOUND


@dataclass(frozen=True)
class AwsStores:
    s3: S3Client
    dynamodb: DynamoDBClient
    raw_bucket: str
    analytics_bucket: str
    curated_table: str
    quarantine: Quarantine
    clock: Clock
    max_file_bytes: int


class AwsErasure:
    def __init__(
        self,
        stores: AwsStores,
        *,
        tombstones: ErasureTombstones,
        lease: LakeLease,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._stores = stores
        self._raw_objects = S3RawBucket(stores.raw_bucket, stores.s3)
        self._analytics_objects = S3RawBucket(stores.analytics_bucket, stores.s3)
        self._tombstones = tombstones
        self._lease = lease
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._versions_deleted = 0

    def erase(self, target: ErasureTarget) -> ErasureAnswer:
        started_ms = self._stores.clock.now_ms()
        self._versions_deleted = 0
        # The tombstone first: write_lake leaves the user's events out from its next invocation on. One
        # that read the tombstones before may still be writing: past its timeout, none is (lake_stream.py).
        self._tombstones.record(target, started_ms)
        self._take_lease()
        try:
            self._sleep(WRITER_TIMEOUT_S + 1)
            lake_files, event_ids = self._lake(target)
            self._curated(event_ids)
            records = self._quarantine(target)
            raw_files = self._raw(target)
            unreadable_files = self._unreadable(target)
            old_versions = self._versions_deleted + self._old_versions(target)
        finally:
            self._lease.release()
        answer: ErasureAnswer = {
            "started_at": to_iso(started_ms),
            "finished_at": to_iso(self._stores.clock.now_ms()),
            "events_erased": len(event_ids) + len(records),
            "files_rewritten": lake_files + raw_files + unreadable_files,
            "old_versions_deleted": old_versions,
        }
        if not (answer["events_erased"] or answer["files_rewritten"] or old_versions):
            answer["note"] = NOTHING_FOUND  # only the tombstone was written: no id, gone in two days
        return answer

    def _take_lease(self) -> None:
        """The lake's lease, waiting (a bounded number of polls) for a compaction to stop after its merge;
        StorageError, having erased nothing, when another erasure holds it or a compaction does not let go."""
        for _ in range(ERASURE_WAIT_S // POLL_S + 1):
            if self._lease.take():
                return
            holder = self._lease.held_by()
            if holder is not None and holder[0] != "compaction":
                raise StorageError(
                    f"another erasure holds the lake until {to_iso(holder[1])} (one still running, or one stopped "
                    "by its timeout): nothing was erased; invoke erase again after that time"
                )
            self._lease.want()
            self._sleep(POLL_S)
        raise StorageError(
            f"the lake's compaction still holds the lake after {ERASURE_WAIT_S} s (a compaction stopped midway "
            "holds it 16 minutes at most): nothing was erased; invoke erase again"
        )

    def _lake(self, target: ErasureTarget) -> tuple[int, set[str]]:
        import pyarrow.compute as pc

        from eventpipe.erasure.lake_rows import matching_rows
        from eventpipe.lake.parquet import from_parquet, to_parquet

        bucket = self._analytics_objects
        rewritten, event_ids = 0, set()
        for key in _listed(bucket, LAKE_PREFIX):
            table = from_parquet(bucket.get(key))
            mask = matching_rows(table, target)
            if not pc.any(mask).as_py():
                continue
            matched = table.filter(mask)
            event_ids |= {str(e).lower() for e in matched.column("event_id").to_pylist()}
            kept = table.filter(pc.invert(mask))
            if kept.num_rows:
                bucket.put(key, to_parquet(kept))
            else:
                bucket.delete(key)
            self._forget_versions(bucket, key)
            rewritten += 1
        return rewritten, event_ids

    def _unreadable(self, target: ErasureTarget) -> int:
        """Stream records write_lake could not make rows of (`lake-unreadable/`): the user's left out."""
        from eventpipe.adapters.aws.lake_stream import without_target

        bucket = self._analytics_objects
        rewritten = 0
        for key in _listed(bucket, UNREADABLE_PREFIX):
            new = without_target(bucket.get(key), target)
            if new is None:
                continue
            if new == b"[]":
                bucket.delete(key)
            else:
                bucket.put(key, new)
            self._forget_versions(bucket, key)
            rewritten += 1
        return rewritten

    def _curated(self, event_ids: set[str]) -> None:
        keys: list[Any] = [{"event_id": {"S": event_id}} for event_id in sorted(event_ids)]
        batch_delete(self._stores.dynamodb, self._stores.curated_table, keys, self._backoff)

    def _quarantine(self, target: ErasureTarget) -> list[tuple[str, int]]:
        records = [(r.batch_id, r.index) for r in self._stores.quarantine.iter_all() if target.matches_line(r.raw)]
        self._stores.quarantine.remove(records)
        return records

    def _raw(self, target: ErasureTarget) -> int:
        bucket = self._raw_objects
        rewritten = 0
        # every raw batch: the lake and the quarantine do not name every batch holding the user's lines
        # (a replay's own batch, a dropped duplicate's); rewrite.raw_batch looks for the ids before parsing
        keys = [key for prefix in (RAW_PREFIX, *DROPPED_PREFIXES, STAGED_PREFIX) for key in _listed(bucket, prefix)]
        for key in keys:
            data = _read(bucket, key)
            new = self._raw_rewrite(key, data, target) if data is not None else None
            if new is None:
                continue
            bucket.put(key, new)
            self._forget_versions(bucket, key)
            rewritten += 1
        return rewritten

    def _raw_rewrite(self, key: str, data: bytes, target: ErasureTarget) -> bytes | None:
        """The raw bucket's object `key` without the user's events; None when it holds none."""
        if key.startswith(RAW_PREFIX):
            return rewrite.raw_batch(data, target)
        if key.startswith(STAGED_PREFIX):
            return rewrite.staged(data, target)
        return rewrite.dropped_file(data, target, max_bytes=self._stores.max_file_bytes)

    def _old_versions(self, target: ErasureTarget) -> int:
        """Delete the noncurrent versions, in both buckets, that hold the user's events; how many.

        The versions of the objects rewritten above are gone already; these are the old bytes of objects
        the pipeline itself deleted or overwrote (a `requests/` object once grouped, a merged lake object).
        """
        import pyarrow.compute as pc

        from eventpipe.adapters.aws.lake_stream import without_target
        from eventpipe.erasure.lake_rows import matching_rows
        from eventpipe.lake.parquet import from_parquet

        def lake_holds(key: str, data: bytes) -> bool:
            if not key.endswith(".parquet"):
                return target.may_hold(data)
            return bool(pc.any(matching_rows(from_parquet(data), target)).as_py())

        def unreadable_holds(_key: str, data: bytes) -> bool:
            return without_target(data, target) is not None

        def raw_holds(key: str, data: bytes) -> bool:
            if key.startswith(REQUESTS_PREFIX):
                return _requests_hold(data, target, max_bytes=self._stores.max_file_bytes)
            return self._raw_rewrite(key, data, target) is not None

        raw = self._raw_objects
        prefixes = (RAW_PREFIX, *DROPPED_PREFIXES, STAGED_PREFIX, REQUESTS_PREFIX)
        deleted = sum(self._delete_old_versions(raw, prefix, raw_holds) for prefix in prefixes)
        analytics = self._analytics_objects
        deleted += self._delete_old_versions(analytics, LAKE_PREFIX, lake_holds)
        return deleted + self._delete_old_versions(analytics, UNREADABLE_PREFIX, unreadable_holds)

    def _delete_old_versions(self, bucket: S3RawBucket, prefix: str, holds: Callable[[str, bytes], bool]) -> int:
        deleted = 0
        old = [v for v in bucket.versions(prefix) if not v.latest and not v.marker]
        for version in old:
            data = _read(bucket, version.key, version.version_id)
            if data is None or not holds(version.key, data):
                continue
            bucket.delete(version.key, version.version_id)
            deleted += 1
        return deleted

    def _forget_versions(self, bucket: S3RawBucket, key: str) -> None:
        """Delete every noncurrent version of `key` (and its delete markers): the old bytes held the ids."""
        # the current version stays (it is the rewritten object); a delete marker goes too, so that an
        # object deleted here leaves no version and no marker behind
        old = [v for v in bucket.versions(key) if v.key == key and (v.marker or not v.latest)]
        for version in old:
            bucket.delete(key, version.version_id)
        self._versions_deleted += sum(not v.marker for v in old)


def _listed(bucket: S3RawBucket, prefix: str) -> list[str]:
    """The keys under `prefix`, listed whole before any rewrite: a rewritten object is not listed again."""
    return list(bucket.keys(prefix))


def _read(bucket: S3RawBucket, key: str, version_id: str | None = None) -> bytes | None:
    """The object's bytes (of that version), as put; None when it went since it was listed."""
    try:
        return bucket.get(key, version_id)
    except ObjectNotFoundError:
        return None


def _requests_hold(data: bytes, target: ErasureTarget, *, max_bytes: int) -> bool:
    """True when a request stream object (one request a line, gzipped then base64) holds a user's event."""
    from eventpipe.core.grouping import decode_message

    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            request = decode_message(line.strip(), max_bytes=max_bytes)
        except ValueError:  # not a request: it cannot be read as events, only searched
            if target.may_hold(line):
                return True
            continue
        if rewrite.raw_batch(request.encode(), target) is not None:
            return True
    return False

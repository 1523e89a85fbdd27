"""The `FileSplitter` on AWS: a large object's byte ranges as asynchronous invocations of ingest, read
back with S3 Range GETs.

An object larger than `range_bytes` (`EVENTPIPE_FILE_RANGE_BYTES`) and not gzip-compressed is cut
into ranges of that size; each becomes one asynchronous invocation of ingest itself
(`{"file_range": {...}}`, `lambda_async.py`): Lambda runs a range that fails twice more, then sends it
to the dead-letter queue. A gzip object cannot be entered midway: it is read whole, as before.
"""

from __future__ import annotations

import io
import logging
from typing import IO, TYPE_CHECKING, Any

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.errors import AWS_ERRORS, error_code, storage_error
from eventpipe.adapters.aws.s3 import MISSING_CODES, TranslatedStream
from eventpipe.core.errors import ObjectNotFoundError
from eventpipe.core.ranges import byte_ranges, range_reading_start
from eventpipe.core.readers import GZIP_MAGIC
from eventpipe.handlers.file_ranges import FileRange, range_event

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

    from eventpipe.adapters.aws.lambda_async import AsyncInvoker
    from eventpipe.handlers.drops import ObjectDrop

log = logging.getLogger(__name__)


class S3FileRanges:
    def __init__(self, ranges: AsyncInvoker, range_bytes: int, s3: S3Client | None = None) -> None:
        self.ranges = ranges
        self.range_bytes = range_bytes
        self._s3: S3Client = s3 or make_client("s3")

    def split(self, drop: ObjectDrop) -> int | None:
        size = self._size(drop)
        if size <= self.range_bytes:
            return None
        with self._open(drop, first=0, last=len(GZIP_MAGIC) - 1) as head:
            if head.read(len(GZIP_MAGIC)) == GZIP_MAGIC:
                log.warning(
                    "s3://%s/%s: %d bytes of gzip, read whole (gzip cannot be cut)", drop.bucket, drop.key, size
                )
                return None
        parts = [
            FileRange(drop.bucket, drop.key, drop.version_id, drop.etag, start, end)
            for start, end in byte_ranges(size, self.range_bytes)
        ]
        for part in parts:  # a failure raises: the drop is retried, and ranges sent twice are harmless
            self.ranges.send(range_event(part))
        return len(parts)

    def open_range(self, part: FileRange) -> IO[bytes]:
        return self._open(part.drop, first=range_reading_start(part.start), last=None)

    def _size(self, drop: ObjectDrop) -> int:
        extra: dict[str, Any] = {"VersionId": drop.version_id} if drop.version_id else {}
        try:
            return int(self._s3.head_object(Bucket=drop.bucket, Key=drop.key, **extra)["ContentLength"])
        except AWS_ERRORS as exc:
            if error_code(exc) in MISSING_CODES:
                raise ObjectNotFoundError(f"s3://{drop.bucket}/{drop.key} does not exist") from exc
            raise storage_error(exc, f"cannot look up s3://{drop.bucket}/{drop.key}") from exc

    def _open(self, drop: ObjectDrop, *, first: int, last: int | None) -> IO[bytes]:
        extra: dict[str, Any] = {"VersionId": drop.version_id} if drop.version_id else {}
        wanted = f"bytes={first}-{'' if last is None else last}"
        try:
            answer = self._s3.get_object(Bucket=drop.bucket, Key=drop.key, Range=wanted, **extra)
        except AWS_ERRORS as exc:
            if error_code(exc) in MISSING_CODES:
                raise ObjectNotFoundError(f"s3://{drop.bucket}/{drop.key} does not exist") from exc
            raise storage_error(exc, f"cannot read s3://{drop.bucket}/{drop.key}") from exc
        name = f"s3://{drop.bucket}/{drop.key} ({wanted})"
        return io.BufferedReader(TranslatedStream(answer["Body"], name), 256 * 1024)

"""Large files dropped under `incoming/`, read in byte ranges by separate invocations.

One invocation has 300 s: a file too large for that would restart from byte 0 on every retry and end
in the dead-letter queue. Instead, the drop handler asks a `FileSplitter` (on AWS: one asynchronous
invocation of ingest a range) to hand the object's ranges on, and each range comes back to ingest as
its own event, `{"file_range": {...}}`. A range's
batch ids come from the object version and the range (`Ingestor.ingest_range`), so a redelivered
range finds its batches and counts nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

import orjson

from eventpipe.core.errors import InputError, ObjectNotFoundError
from eventpipe.core.ingest import IngestSummary
from eventpipe.handlers.drops import INCOMING_PREFIX, ObjectDrop

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.core.documents import RangeDocument, RangesAnswer
    from eventpipe.handlers.services import Services

log = logging.getLogger(__name__)

MAX_RANGE_MESSAGE_BYTES = 4096  # a range event is under 2 KiB (S3 keys are at most 1,024 bytes)
RANGE_EVENT_KEY = "file_range"


@dataclass(frozen=True)
class FileRange:
    """Bytes `[start, end)` of one version of one object."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    start: int
    end: int

    @property
    def drop(self) -> ObjectDrop:
        return ObjectDrop(self.bucket, self.key, self.version_id, self.etag)


class FileSplitter(Protocol):
    def split(self, drop: ObjectDrop) -> int | None:
        """Queue the object's ranges and return how many; None when it is read whole (small, or gzip)."""

    def open_range(self, part: FileRange) -> IO[bytes]:
        """The object's bytes from `range_reading_start(part.start)` on; `ObjectNotFoundError` if gone."""


def range_event(part: FileRange) -> bytes:
    """The event of ingest's invocation for one range."""
    return orjson.dumps({RANGE_EVENT_KEY: asdict(part)})


def is_range_event(event: Mapping[str, Any]) -> bool:
    return RANGE_EVENT_KEY in event


def handle_range_event(event: Mapping[str, Any], services: Services, splitter: FileSplitter) -> RangesAnswer:
    """Ingest the range the event names. A store that fails raises: Lambda runs the invocation again."""
    body = orjson.dumps(event[RANGE_EVENT_KEY]).decode()
    part = parse_range(body, services.bucket.name)
    if part is None:
        log.error("file-range event dropped: not a range of incoming/: %.200r", body)
        return {"ranges": [{"status": "dropped"}]}
    return {"ranges": [ingest_range(part, services, splitter)]}


def ingest_range(part: FileRange, services: Services, splitter: FileSplitter) -> RangeDocument:
    summary, status, error = IngestSummary(), "ingested", None
    try:
        with splitter.open_range(part) as stream:
            records = services.ingestor.ingest_range(
                stream, source=f"s3:{part.key}", version=part.drop.source, start=part.start, end=part.end
            )
            for batch in records:
                summary.add(batch)
    except ObjectNotFoundError as exc:
        log.warning("s3://%s/%s is gone; range %d-%d not read: %s", part.bucket, part.key, part.start, part.end, exc)
        status, error = "missing", str(exc)
    except InputError as exc:
        status, error = "refused", str(exc)
    counts = summary.as_dict()
    document: RangeDocument = {
        "key": part.key,
        "start": part.start,
        "end": part.end,
        "status": status,
        "batches": summary.batches,
        "received": counts["received"],
        "curated": counts["curated"],
        "duplicates": counts["duplicates"],
        "rejected": counts["rejected"],
    }
    if error:
        document["error"] = error
    return document


def parse_range(body: str, bucket: str) -> FileRange | None:
    """A range message of this bucket's `incoming/`, or None for anything else."""
    if len(body.encode()) > MAX_RANGE_MESSAGE_BYTES:
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or set(document) != {"bucket", "key", "version_id", "etag", "start", "end"}:
        return None
    key, start, end = document["key"], document["start"], document["end"]
    if document["bucket"] != bucket or not isinstance(key, str) or not key.startswith(INCOMING_PREFIX):
        return None
    if type(start) is not int or type(end) is not int or not 0 <= start < end:
        return None
    if not all(document[name] is None or isinstance(document[name], str) for name in ("version_id", "etag")):
        return None
    return FileRange(bucket, key, document["version_id"], document["etag"], start, end)

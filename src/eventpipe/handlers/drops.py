"""Files dropped under `incoming/`: read an S3 notification (direct or through EventBridge), stream
each object into batches and start one workflow per batch. Objects the request stream delivers
under `requests/` (AWS micro-batching) become group batches instead (handlers/request_objects.py).

An object version always cuts into the same batch ids, so a repeated notification finds its batches
done (or finishes the ones that are not) and counts nothing twice. An object that is gone is
logged and counted, not retried: retrying cannot bring it back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from eventpipe.core.batch_ids import object_version
from eventpipe.core.errors import InputError, ObjectNotFoundError
from eventpipe.core.ingest import IngestSummary
from eventpipe.handlers.request_objects import REQUESTS_PREFIX, group_requests_object

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.core.documents import DropDocument
    from eventpipe.core.ports import RequestIndex
    from eventpipe.handlers.services import Services

log = logging.getLogger(__name__)
INCOMING_PREFIX = "incoming/"


@dataclass(frozen=True)
class ObjectDrop:
    bucket: str
    key: str  # URL-decoded
    version_id: str | None  # None in a bucket without versioning
    etag: str | None = None  # tells the contents of one key apart where there are no versions

    @property
    def source(self) -> str:
        """What names this content of this object: the same notification again gives the same batch ids."""
        return object_version(self.bucket, self.key, self.version_id or self.etag)


@dataclass
class DropOutcome:
    key: str
    status: str  # "ingested", "grouped", "split", "missing", "ignored" or "refused"
    summary: IngestSummary = field(default_factory=IngestSummary)
    error: str | None = None
    ranges: int = 0  # status "split": the byte ranges queued, each ingested by its own invocation
    requests: int = 0  # status "grouped": the requests grouped for the first time

    def as_dict(self) -> DropDocument:
        counts = self.summary.as_dict()
        document: DropDocument = {
            "key": self.key,
            "status": self.status,
            "batches": self.summary.batches,
            "received": counts["received"],
            "curated": counts["curated"],
            "duplicates": counts["duplicates"],
            "rejected": counts["rejected"],
        }
        if self.ranges:
            document["ranges"] = self.ranges
        if self.requests:
            document["requests"] = self.requests
        if self.error:
            document["error"] = self.error
        return document


def is_drop_event(event: Mapping[str, Any]) -> bool:
    if event.get("Event") == "s3:TestEvent":  # S3 sends one when a notification is configured
        return True
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return str(records[0].get("eventSource")) == "aws:s3"
    return event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created"


def drops_of(event: Mapping[str, Any]) -> list[ObjectDrop]:
    """The created objects named by an S3 notification or an EventBridge "Object Created" event."""
    # Imported here: Powertools' data classes package loads every event type it knows, a tenth of a
    # cold start, and only file drops need these two.
    from aws_lambda_powertools.utilities.data_classes import S3Event, S3EventBridgeNotificationEvent

    if event.get("Event") == "s3:TestEvent":
        return []
    if "Records" in event:
        return [  # S3 notifications URL-encode keys (a space as "+"); the EventBridge view below decodes its own
            ObjectDrop(
                r.s3.bucket.name,
                unquote_plus(r.s3.get_object.key),
                r.s3.get_object.get("versionId") or None,
                r.s3.get_object.get("eTag") or None,
            )
            for r in S3Event(dict(event)).records
            if r.event_name.startswith("ObjectCreated")
        ]
    detail = S3EventBridgeNotificationEvent(dict(event)).detail
    found = detail.object  # its `version_id` raises KeyError in a bucket without versioning
    return [ObjectDrop(detail.bucket.name, found.key, found.get("version-id") or None, found.etag or None)]


def ingest_drop(drop: ObjectDrop, services: Services) -> DropOutcome:
    """Stream one object into batches. Only objects of the raw bucket under `incoming/` are read, and
    under `requests/` where the deployment has a request index."""
    index = services.request_index
    if drop.bucket == services.bucket.name and drop.key.startswith(REQUESTS_PREFIX) and index is not None:
        return _group_drop(drop, services, index)
    if drop.bucket != services.bucket.name or not drop.key.startswith(INCOMING_PREFIX):
        log.warning("ignored s3://%s/%s: not under %s of the raw bucket", drop.bucket, drop.key, INCOMING_PREFIX)
        return DropOutcome(drop.key, "ignored")
    outcome = DropOutcome(drop.key, "ingested")
    try:
        splitter = services.file_splitter
        ranges = None if splitter is None else splitter.split(drop)
        if ranges is not None:  # a large object: each range is ingested by an invocation of its own
            log.info("s3://%s/%s queued as %d byte ranges", drop.bucket, drop.key, ranges)
            outcome.status, outcome.ranges = "split", ranges
            return outcome
        with services.bucket.open(drop.key, drop.version_id) as stream:
            for record in services.ingestor.ingest_file(stream, source=f"s3:{drop.key}", version=drop.source):
                outcome.summary.add(record)
    except ObjectNotFoundError as exc:
        log.warning("s3://%s/%s is gone; nothing to ingest: %s", drop.bucket, drop.key, exc)
        outcome.status, outcome.error = "missing", str(exc)
    except InputError as exc:  # a gzip bomb, a broken gzip stream: what was read before it stays ingested
        log.error("s3://%s/%s refused after %d events: %s", drop.bucket, drop.key, outcome.summary.received, exc)
        outcome.status, outcome.error = "refused", str(exc)
    else:
        if outcome.summary.received == 0:
            log.warning("s3://%s/%s holds no events", drop.bucket, drop.key)
    return outcome


def _group_drop(drop: ObjectDrop, services: Services, index: RequestIndex) -> DropOutcome:
    outcome = DropOutcome(drop.key, "grouped")
    try:
        with services.bucket.open(drop.key, drop.version_id) as stream:
            grouped = group_requests_object(
                stream,
                bucket=services.bucket,
                batches=services.batches,
                index=index,
                starter=services.ingestor.starter,
                limits=services.settings.limits,
            )
    except ObjectNotFoundError as exc:
        log.warning("s3://%s/%s is gone; nothing to group: %s", drop.bucket, drop.key, exc)
        outcome.status, outcome.error = "missing", str(exc)
        return outcome
    for record in grouped.groups:
        outcome.summary.add(record)
    outcome.requests = grouped.new_requests
    # Its requests are in their groups' raw batches now (which erasure rewrites): the object, with
    # the events and the clients' addresses, is not kept (its old version expires with the bucket's).
    services.bucket.delete(drop.key)
    log.info("s3://%s/%s grouped", drop.bucket, drop.key, extra=grouped.as_dict())
    return outcome

"""Ingest: cut a stream of candidate events into raw batches, store each durably, start its workflow.

The raw write is the acknowledgement: once it returns, the batch cannot be lost. Batch ids come from
the caller, so the same input (a file, an S3 object version) always maps to the same batches and a
second ingest of it, or a restart after a crash, finishes what is missing instead of counting twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, TYPE_CHECKING

from eventpipe.core.batch_ids import queued_batch_id, range_version, request_batch_id, source_batch_ids
from eventpipe.core.errors import InputError, StorageError
from eventpipe.core.grouping import encode_message
from eventpipe.core.model import BatchRecord, BatchStatus, Limits, Reason, ReasonCode
from eventpipe.core.ranges import range_lines
from eventpipe.core.rawbatch import RawBatch, store_raw
from eventpipe.core.readers import iter_lines
from eventpipe.core.requests import shape_reasons

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from eventpipe.core.documents import IngestCounts, Refusal
    from eventpipe.core.ports import BatchStore, Clock, RawBucket, RequestQueue, WorkflowStarter
    from eventpipe.core.readers import Line
    from eventpipe.core.request_facts import RequestFacts


@dataclass(slots=True)
class IngestSummary:
    """What happened to the events of one input, summed over its batches."""

    received: int = 0
    curated: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    unfinished: list[str] = field(default_factory=list)

    def merge(self, other: IngestSummary) -> None:
        self.received += other.received
        self.curated += other.curated
        self.duplicates += other.duplicates
        self.rejected.update(other.rejected)
        self.batches += other.batches
        self.unfinished.extend(other.unfinished)

    def add(self, record: BatchRecord) -> None:
        self.batches += 1
        self.received += record.received
        self.curated += record.curated
        self.duplicates += record.duplicates
        self.rejected.update(record.rejected_by_code)
        if record.status is not BatchStatus.DONE:
            self.unfinished.append(record.batch_id)

    def as_dict(self) -> IngestCounts:
        return {
            "received": self.received,
            "curated": self.curated,
            "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
        }


class Ingestor:
    def __init__(
        self,
        *,
        bucket: RawBucket,
        batches: BatchStore,
        starter: WorkflowStarter,
        clock: Clock,
        limits: Limits,
        queue: RequestQueue | None = None,
        queue_below_events: int = 100,
        encode_request: Callable[[RawBatch], bytes] = encode_message,
    ) -> None:
        self._queue = queue
        self._encode_request = encode_request  # a stream's line (gzip, base64) on AWS; the raw batch locally
        # A request this large is already a batch's worth: grouping it would only add the queue's hop.
        self._queue_below_events = queue_below_events
        self._bucket = bucket
        self._batches = batches
        self.starter = starter
        self._clock = clock
        self._limits = limits

    def ingest(
        self, lines: Iterable[Line], *, source: str, batch_id_for: Callable[[int], str]
    ) -> Iterator[BatchRecord]:
        """Store and start one batch per `max_batch_events` lines; yield each batch's record after its start.

        With a synchronous starter (the local runtime's CLI) the records are final; with an
        asynchronous one (Step Functions) they are pending.
        """
        iterator = iter(lines)
        number = 0
        while True:
            chunk: list[Line] = []
            try:
                chunk.extend(islice(iterator, self._limits.max_batch_events))
            except InputError:  # the input breaks off: the events read before it are a batch all the same
                if chunk:
                    yield self.submit(self._raw_batch(batch_id_for(number), source, chunk))
                raise
            if not chunk:
                return
            yield self.submit(self._raw_batch(batch_id_for(number), source, chunk))
            number += 1

    def ingest_file(self, stream: IO[bytes], *, source: str, version: str) -> Iterator[BatchRecord]:
        """`ingest` a file or object read in bounded memory (gzip-aware, within the file limits).

        `version` names this content of it (a path with size and modification time, an S3 key with
        its version id): its batch ids come from it and the batch size, see `source_batch_ids`.
        """
        lines = iter_lines(
            stream,
            max_event_bytes=self._limits.max_event_bytes,
            max_total_bytes=self._limits.max_file_bytes,
            max_document_bytes=self._limits.max_body_bytes,
        )
        return self.ingest(lines, source=source, batch_id_for=source_batch_ids(version, self._limits.max_batch_events))

    def ingest_range(
        self, stream: IO[bytes], *, source: str, version: str, start: int, end: int
    ) -> Iterator[BatchRecord]:
        """`ingest` the lines of one byte range of a large NDJSON object (`core/ranges.py`).

        `stream` begins at `range_reading_start(start)`. The batch ids come from `version`, the range
        and the batch size: a range delivered again finds its batches, and no other range shares them.
        """
        lines = range_lines(stream, start=start, end=end, max_event_bytes=self._limits.max_event_bytes)
        batch_ids = source_batch_ids(range_version(version, start, end), self._limits.max_batch_events)
        return self.ingest(lines, source=source, batch_id_for=batch_ids)

    def submit_request(
        self, lines: list[Line], *, source: str, batch_id: str | None = None, request: RequestFacts | None = None
    ) -> tuple[BatchRecord, list[Refusal]]:
        """Store and start one request's events as one batch; also return the events refused for their shape.

        `batch_id` is the batch's if it is stored as one of its own; None: a fresh request id, drawn
        only then (a queued request gets a queued id instead). `request` travels in the raw batch's
        header, for ProcessBatch to apply to each event. Raises `InputError`, storing nothing, when not
        one event of the request is JSON.
        """
        raw = self._raw_batch(batch_id or "", source, lines, check_shape=True)
        if request is not None:
            raw.request = request
        if not raw.events and all(r["reasons"][0]["code"] == ReasonCode.MALFORMED_JSON for r in raw.refused):
            raise InputError("the body holds no JSON event")
        small = len(raw.events) + len(raw.refused) < self._queue_below_events
        if self._queue is not None and small and (queued := self._enqueue(raw)) is not None:
            return queued, raw.refused
        raw.batch_id = raw.batch_id or request_batch_id(raw.received_at_ms)
        return self._start(self._store(raw)), raw.refused  # a request's batch id is new: nothing to look up

    def _enqueue(self, raw: RawBatch) -> BatchRecord | None:
        """Micro-batching (core/grouping.py): send the request to the queue, where the batching function
        groups it with others into one batch; None when it is too large for a message (then it is a
        batch of its own). Once `send` returns, the queue holds it durably: the acknowledgement."""
        assert self._queue is not None
        own_id, raw.batch_id = raw.batch_id, queued_batch_id(raw.received_at_ms, raw.received)
        body = self._encode_request(raw)
        if len(body) > self._queue.max_message_bytes:
            raw.batch_id = own_id
            return None
        self._queue.send(body)
        return BatchRecord(raw.batch_id, "", raw.source, raw.received_at_ms, raw.received)

    def submit(self, raw: RawBatch) -> BatchRecord:
        """Store one cut batch, unless it is stored already, and start its workflow.

        A batch id that is done is returned as it is; one that is pending or failed is started
        again from the raw object stored the first time.
        """
        existing = self._batches.get(raw.batch_id)
        if existing is not None and existing.status is BatchStatus.DONE:
            return existing
        failed = existing is not None and existing.status is BatchStatus.FAILED
        return self._start(existing or self._store(raw), retry=failed)

    def _start(self, record: BatchRecord, *, retry: bool = False) -> BatchRecord:
        try:
            self.starter.start(record.batch_id, record.raw_key, retry=retry)
        except StorageError as exc:
            # The batch is stored, so it is acknowledged: failing now would only make the client send
            # it again. It stays pending until `replay` starts it.
            log.error("batch %s is stored but its workflow did not start (run replay): %s", record.batch_id, exc)
            return record
        return self._batches.get(record.batch_id) or record

    def _raw_batch(self, batch_id: str, source: str, chunk: list[Line], *, check_shape: bool = False) -> RawBatch:
        raw = RawBatch(batch_id=batch_id, source=source, received_at_ms=self._clock.now_ms())
        for line in chunk:
            if line.data is None:
                raw.refused.append(refusal(line, self._limits.max_event_bytes))
                continue
            if check_shape:
                event, reasons = shape_reasons(line.data)
                if reasons:
                    raw.refused.append(_shape_refusal(line, line.data, event, reasons))
                    continue
            raw.events.append(line.data)
            raw.positions.append(line.position)
        return raw

    def _store(self, raw: RawBatch) -> BatchRecord:
        record = store_raw(self._bucket, raw)
        self._batches.create(record)
        return record


def refusal(line: Line, limit: int) -> Refusal:
    """The header entry for an event refused as it was read (`line.data` is None): `too_large`, for
    its size over `limit` or for the `line.problem` the reader found (nested too deeply to store)."""
    message = line.problem or f"event larger than {limit} bytes; only its start is kept"
    entry: Refusal = {
        "index": line.position,
        "raw": line.prefix.decode("utf-8", "backslashreplace"),
        "reasons": [Reason(ReasonCode.TOO_LARGE, "$", message).as_dict()],
    }
    if line.line is not None:
        entry["line"] = line.line
    return entry


def _shape_refusal(line: Line, data: bytes, event: object, reasons: list[Reason]) -> Refusal:
    """The header entry for an event refused at ingest for its shape; it keeps the whole text."""
    event_id = event.get("event_id") if isinstance(event, dict) else None
    entry: Refusal = {
        "index": line.position,
        "raw": data.decode("utf-8", "backslashreplace"),
        "reasons": [r.as_dict() for r in reasons],
    }
    if line.line is not None:
        entry["line"] = line.line
    if isinstance(event_id, str):
        entry["event_id"] = event_id
    return entry

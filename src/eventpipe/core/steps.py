"""The workflow's steps (the Task states of `pipeline.asl.json`), as plain functions of JSON documents.

`process_batch` does a batch's work in one pass with Python objects: the raw batch is read once,
each event is parsed, validated and enriched once, and the curated events go straight to the
curated store and into the batch's aggregate; nothing is staged between steps. The state passed
on stays small (counts, never events), and every step may be retried or run twice (an Express
execution started twice): a retry never stores a second record nor counts an event twice.
"""

from __future__ import annotations

from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.aggregate import aggregate_batch
from eventpipe.core.errors import EnrichmentError
from eventpipe.core.facts import Fact, fact_of
from eventpipe.core.model import BatchStatus, Reason, ReasonCode, Rejection
from eventpipe.core.rawbatch import RawBatch
from eventpipe.core.timeutil import to_iso
from eventpipe.core.validation import parse_event, validate_event

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

    from eventpipe.core.documents import BatchRef, MarkDoneInput, MarkFailedInput, ProcessOutcome, StepStatus
    from eventpipe.core.enrich import Enricher
    from eventpipe.core.ports import (
        BatchStore,
        Clock,
        CuratedStore,
        InsightsStore,
        Quarantine,
        RawBucket,
    )
    from eventpipe.core.registry import SchemaRegistry
    from eventpipe.core.request_facts import RequestFacts


@dataclass(slots=True)
class CuratedBatch:
    """A batch after validation and enrichment: what to store, to count and to release."""

    rejections: list[Rejection] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    released: list[tuple[str, int]] = field(default_factory=list)  # quarantine records that passed now


class PipelineSteps:
    """The steps bound to their stores; the local interpreter and the Lambda handlers call these.

    `atomically()` groups `process_batch`'s writes into one commit where the stores can (one SQLite
    transaction on one machine); on DynamoDB each write is atomic on its own and idempotent per
    batch, so it needs no grouping (the default).

    The lake is not written here: on one machine the lake writer follows the curated store, on AWS
    `write_lake` follows the curated table's stream (adapters/aws/lake_stream.py).
    """

    def __init__(
        self,
        *,
        registry: SchemaRegistry,
        enrichers: Sequence[Enricher],
        bucket: RawBucket,
        curated: CuratedStore,
        quarantine: Quarantine,
        batches: BatchStore,
        insights: InsightsStore,
        clock: Clock,
        atomically: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self.registry = registry
        self.enrichers = list(enrichers)
        self._enrich_calls = tuple((enricher.name, enricher.enrich) for enricher in self.enrichers)  # bound once
        self.bucket = bucket
        self.curated = curated
        self.quarantine = quarantine
        self.batches = batches
        self.insights = insights
        self.clock = clock
        self.atomically = atomically

    def process_batch(self, state: BatchRef) -> ProcessOutcome:
        """`{batch_id, raw_key}` -> validate, enrich, persist and aggregate the batch; its counts.

        Invalid events are quarantined; curated ones stored unless their id is stored already (a
        duplicate); the new ones aggregated into the insights once per batch. A replayed event keeps
        the quarantine record it came from: rejected again, the record is updated; curated now, the
        record is released once the event is stored and counted. Replays do not count their
        refusals again, nor their events' lag. A batch that is done already is not processed again.
        """
        batch_id = state["batch_id"]
        record = self.batches.get(batch_id)
        if record is not None and record.status is BatchStatus.DONE:
            # Run again (a repeated Express start, a restart that raced the first run): nothing to do.
            done = _outcome(0, record.curated, record.duplicates, record.rejected_by_code, record.received_at_ms)
            done["repeated"] = True
            return done
        raw = RawBatch.decode(self.bucket.get(state["raw_key"]))
        batch = self._curate_batch(batch_id, raw)
        replay = bool(raw.origins)
        rejected = Counter(str(r.reasons[0].code) for r in batch.rejections)
        rows = [(f.event_id, f.event_type, p) for f, p in zip(batch.facts, batch.payloads, strict=True)]
        # Locally the payloads' segment file, written and fsynced before the write transaction: the
        # other runners then never wait on SQLite's write lock through this batch's fsyncs.
        self.curated.stage(batch_id, rows)
        with self.atomically():
            # A replay's rejections are records it took from the quarantine: update them, never add one
            # back that a concurrent replay released or an erasure removed meanwhile.
            (self.quarantine.update if replay else self.quarantine.add)(batch.rejections)
            flags = self.curated.put_new(batch_id, rows, staged=True)  # its segment: `stage` above
            new = [fact for fact, is_new in zip(batch.facts, flags, strict=True) if is_new]
            duplicates = len(flags) - len(new)
            aggregate = aggregate_batch(
                new,
                received_at_ms=raw.received_at_ms,
                now_ms=self.clock.now_ms(),
                rejected={} if replay else dict(rejected),
                duplicates=0 if replay else duplicates,
                measure_lag=not replay,  # a replayed event's age says nothing about the pipeline's lag
            )
            self.insights.apply(batch_id, aggregate)
            self.quarantine.remove(batch.released)
        return _outcome(len(batch.facts), len(new), duplicates, dict(rejected), raw.received_at_ms)

    def _curate_batch(self, batch_id: str, raw: RawBatch) -> CuratedBatch:
        received_at = to_iso(raw.received_at_ms)  # one text for the whole batch
        batch = CuratedBatch(
            rejections=[
                Rejection(
                    batch_id,
                    r["index"],
                    "ingest",
                    tuple(Reason(**x) for x in r["reasons"]),
                    r["raw"],
                    r.get("event_id"),
                )
                for r in raw.refused
            ]
        )
        keys = [(str(b), int(i)) for b, i in raw.origins] or [(batch_id, p) for p in raw.positions]
        # A replay's events all come from quarantine records; a batch's own events have one only if an
        # earlier attempt rejected them (with another schema, say). Releasing no other saves a
        # delete per curated event, a write unit each in DynamoDB.
        quarantined = None if raw.origins else {(batch_id, r.index) for r in self.quarantine.for_batch(batch_id)}
        # None where an event's request has no facts to apply (a file's batch: every event), tested once.
        requests = (
            [f or None for f in raw.facts_by_event()] if raw.requests else [raw.request or None] * len(raw.events)
        )
        for (record_batch, record_index), data, request in zip(keys, raw.events, requests, strict=True):
            event, payload, reasons = self._curate(data, received_at, request)
            if reasons:
                event_id = event.get("event_id") if isinstance(event, dict) else None
                text = _quarantined_text(data, request)
                stage = "enrich" if reasons[0].code == ReasonCode.ENRICHMENT_FAILED else "validate"
                batch.rejections.append(
                    Rejection(record_batch, record_index, stage, tuple(reasons), text, _text_or_none(event_id))
                )
                continue
            if quarantined is None or (quarantined and (record_batch, record_index) in quarantined):
                batch.released.append((record_batch, record_index))
            batch.facts.append(fact_of(event))
            batch.payloads.append(payload)
        return batch

    def _curate(self, data: bytes, received_at: str, request: RequestFacts | None) -> tuple[Any, bytes, list[Reason]]:
        """The curated event and its JSON text, or the reasons it is rejected."""
        event, malformed = parse_event(data)
        if malformed is not None:
            return None, b"", [malformed]
        if request is not None and isinstance(event, dict):
            request.apply(event)
        reasons = validate_event(event, self.registry)
        if reasons:
            return event, b"", reasons
        event["received_at"] = received_at
        enrichment: dict[str, Any] = {}
        for name, enrich in self._enrich_calls:
            try:
                enrich(event, enrichment)
            except EnrichmentError as exc:
                return event, b"", [Reason(ReasonCode.ENRICHMENT_FAILED, exc.path, f"{name}: {exc}")]
            except Exception as exc:  # a bug in one enricher rejects one event, never the batch
                message = f"{name}: {type(exc).__name__}: {exc}"
                return event, b"", [Reason(ReasonCode.ENRICHMENT_FAILED, "$", message)]
        context = event.get("context")
        if isinstance(context, dict):
            context.pop("ip", None)  # never stored raw, even with the `ip` enricher switched off
        event["enrichment"] = enrichment
        try:
            return event, orjson.dumps(event), []
        except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (254 levels)
            return event, b"", [Reason(ReasonCode.TOO_LARGE, "$", f"cannot be stored: {exc}")]

    def mark_done(self, state: MarkDoneInput) -> StepStatus:
        """`{batch_id, curated, duplicates, rejected}` -> the batch is done (a retry writes the same)."""
        self.batches.mark_done(state["batch_id"], state["curated"], state["duplicates"], state["rejected"])
        return {"status": "done"}

    def mark_failed(self, state: MarkFailedInput) -> StepStatus:
        """`{batch_id, error: {Error, Cause}}` -> the batch is failed; `eventpipe replay` runs it again."""
        error = state.get("error") or {}
        self.batches.mark_failed(state["batch_id"], f"{error.get('Error')}: {error.get('Cause')}")
        return {"status": "failed"}


def _outcome(
    valid: int, curated: int, duplicates: int, rejected: dict[str, int], received_at_ms: int
) -> ProcessOutcome:
    """ProcessBatch's result: counts only, so the state stays small whatever the batch size."""
    return {
        "valid": valid,
        "curated": curated,
        "duplicates": duplicates,
        "rejected": rejected,
        "received_at_ms": received_at_ms,
        "repeated": False,
    }


def _quarantined_text(data: bytes, request: RequestFacts | None) -> str:
    """A rejected event's text as received, with its request's facts applied when it is a JSON object,
    so that a replay after a schema fix still curates it under its app (and with its request's
    address and user agent)."""
    if request:
        event, malformed = parse_event(data)
        if malformed is None and isinstance(event, dict):
            request.apply(event)
            try:
                return orjson.dumps(event).decode()
            except orjson.JSONEncodeError:  # nested too deep to write back: keep the text as it came
                pass
    return data.decode("utf-8", "backslashreplace")


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None

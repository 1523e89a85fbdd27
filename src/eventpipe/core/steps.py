"""The workflow's steps (the Task states of `pipeline.asl.json`), as plain functions of JSON documents.

Each step reads what it needs by reference (bucket keys, batch id), so the state passed between
steps stays small whatever the batch size, and each may be retried: a retry never stores a second
record nor counts an event twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.aggregate import aggregate_batch
from eventpipe.core.errors import EnrichmentError
from eventpipe.core.facts import Fact, fact_of
from eventpipe.core.model import BatchStatus, Reason, ReasonCode, Rejection
from eventpipe.core.rawbatch import RawBatch, staged_key
from eventpipe.core.timeutil import to_iso
from eventpipe.core.validation import parse_event, validate_event

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eventpipe.core.enrich import Enricher
    from eventpipe.core.ports import BatchStore, Clock, CuratedStore, InsightsStore, Quarantine, RawBucket
    from eventpipe.core.registry import SchemaRegistry
    from eventpipe.core.request_facts import RequestFacts

State = dict[str, Any]


class PipelineSteps:
    """The steps bound to their stores; the local interpreter and the Lambda handlers call these."""

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
    ) -> None:
        self.registry = registry
        self.enrichers = list(enrichers)
        self.bucket = bucket
        self.curated = curated
        self.quarantine = quarantine
        self.batches = batches
        self.insights = insights
        self.clock = clock

    def validate_enrich(self, state: State) -> State:
        """`{batch_id, raw_key}` -> quarantine the invalid events, stage the curated ones.

        A replayed event keeps the quarantine record it came from: rejected again, the record is
        updated; valid now, the record is released once the batch is done (MarkDone), so until
        then a failure leaves it in the quarantine. Replays do not count their refusals again.
        """
        batch_id = state["batch_id"]
        raw = RawBatch.decode(self.bucket.get(state["raw_key"]))
        received_at = to_iso(raw.received_at_ms)
        rejections = [
            Rejection(
                batch_id, r["index"], "ingest", tuple(Reason(**x) for x in r["reasons"]), r["raw"], r.get("event_id")
            )
            for r in raw.refused
        ]
        keys = [(str(b), int(i)) for b, i in raw.origins] or [(batch_id, p) for p in raw.positions]
        # A replay's events all come from quarantine records; a batch's own events have one only if an
        # earlier attempt rejected them (with another schema, say). Releasing no other saves a
        # delete per curated event, a write unit each in DynamoDB.
        quarantined = None if raw.origins else {(batch_id, r.index) for r in self.quarantine.for_batch(batch_id)}
        released: list[tuple[str, int]] = []
        facts: list[Fact] = []
        payloads: list[bytes] = []
        for (record_batch, record_index), data in zip(keys, raw.events, strict=True):
            event, payload, reasons = self._curate(data, received_at, raw.request)
            if reasons:
                event_id = event.get("event_id") if isinstance(event, dict) else None
                text = _quarantined_text(data, raw.request)
                stage = "enrich" if reasons[0].code == ReasonCode.ENRICHMENT_FAILED else "validate"
                rejections.append(
                    Rejection(record_batch, record_index, stage, tuple(reasons), text, _text_or_none(event_id))
                )
                continue
            if quarantined is None or (record_batch, record_index) in quarantined:
                released.append((record_batch, record_index))
            facts.append(fact_of(event))
            payloads.append(payload)
        self.quarantine.add(rejections)
        key = staged_key(batch_id)
        header = orjson.dumps({"facts": [tuple(f) for f in facts], "released": released})
        self.bucket.put(key, b"\n".join([header, *payloads]), durable=False)
        rejected = Counter(str(r.reasons[0].code) for r in rejections)
        return {"staged_key": key, "valid": len(facts), "rejected": dict(rejected), "is_replay": bool(raw.origins)}

    def _curate(self, data: bytes, received_at: str, request: RequestFacts) -> tuple[Any, bytes, list[Reason]]:
        """The curated event and its JSON text, or the reasons it is rejected."""
        event, malformed = parse_event(data)
        if malformed is not None:
            return None, b"", [malformed]
        if request and isinstance(event, dict):
            request.apply(event)
        reasons = validate_event(event, self.registry)
        if reasons:
            return event, b"", reasons
        event["received_at"] = received_at
        enrichment: dict[str, Any] = {}
        for enricher in self.enrichers:
            try:
                enricher.enrich(event, enrichment)
            except EnrichmentError as exc:
                return event, b"", [Reason(ReasonCode.ENRICHMENT_FAILED, exc.path, f"{enricher.name}: {exc}")]
            except Exception as exc:  # a bug in one enricher rejects one event, never the batch
                message = f"{enricher.name}: {type(exc).__name__}: {exc}"
                return event, b"", [Reason(ReasonCode.ENRICHMENT_FAILED, "$", message)]
        context = event.get("context")
        if isinstance(context, dict):
            context.pop("ip", None)  # never stored raw, even with the `ip` enricher switched off
        event["enrichment"] = enrichment
        try:
            return event, orjson.dumps(event), []
        except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (254 levels)
            return event, b"", [Reason(ReasonCode.TOO_LARGE, "$", f"cannot be stored: {exc}")]

    def persist(self, state: State) -> State:
        """`{batch_id, staged_key}` -> store the staged events idempotently; which of them were new."""
        staged = self._read_staged(state["staged_key"])
        facts, payloads = staged.facts, staged.payloads()
        flags = self.curated.put_new(
            state["batch_id"], [(f.event_id, f.event_type, p) for f, p in zip(facts, payloads, strict=True)]
        )
        new_indexes = [i for i, is_new in enumerate(flags) if is_new]
        return {
            "new_indexes": new_indexes,
            "curated": len(new_indexes),
            "duplicates": len(flags) - len(new_indexes),
        }

    def aggregate(self, state: State) -> State:
        """`{batch_id, staged_key, new_indexes, rejected, duplicates, is_replay}` -> add to insights, once per batch.

        Refusals count at the batch that first turned the events away, not again at a replay.
        """
        facts = self._read_staged(state["staged_key"]).facts
        record = self.batches.get(state["batch_id"])
        received_at_ms = record.received_at_ms if record else self.clock.now_ms()
        replay = state["is_replay"]
        aggregate = aggregate_batch(
            (facts[i] for i in state["new_indexes"]),
            received_at_ms=received_at_ms,
            now_ms=self.clock.now_ms(),
            rejected={} if replay else state["rejected"],
            duplicates=0 if replay else state["duplicates"],
            measure_lag=not replay,  # a replayed event's age says nothing about the pipeline's lag
        )
        return {"applied": self.insights.apply(state["batch_id"], aggregate)}

    def mark_done(self, state: State) -> State:
        """`{batch_id, staged_key, curated, duplicates, rejected}` -> the batch is done; drop the staged copy.

        For a replay, the quarantine records of the events that passed are released first.
        """
        record = self.batches.get(state["batch_id"])
        if record is None or record.status is not BatchStatus.DONE:  # else a retry after the commit
            self.quarantine.remove(self._read_staged(state["staged_key"]).released)
            self.batches.mark_done(state["batch_id"], state["curated"], state["duplicates"], state["rejected"])
        self.bucket.delete(state["staged_key"])
        return {"status": "done"}

    def mark_failed(self, state: State) -> State:
        """`{batch_id, error: {Error, Cause}}` -> the batch is failed; `eventpipe replay` runs it again."""
        error = state.get("error") or {}
        self.batches.mark_failed(state["batch_id"], f"{error.get('Error')}: {error.get('Cause')}")
        return {"status": "failed"}

    def _read_staged(self, key: str) -> Staged:
        header, _, body = self.bucket.get(key).partition(b"\n")
        fields = orjson.loads(header)
        released = [(str(b), int(i)) for b, i in fields["released"]]
        return Staged([Fact(*f) for f in fields["facts"]], body, released)


@dataclass(slots=True)
class Staged:
    """What ValidateEnrich hands on: each curated event's facts and payload, and the records to release."""

    facts: list[Fact]
    body: bytes
    released: list[tuple[str, int]]

    def payloads(self) -> list[bytes]:
        return self.body.split(b"\n") if self.facts else []


def _quarantined_text(data: bytes, request: RequestFacts) -> str:
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


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None

"""Micro-batching: the raw batches of many small requests become one group batch, one workflow execution.

Each request is still stored durably before its 202 (locally as its own raw batch and record; on
AWS in the delivery stream), so grouping changes nothing a client was promised; it only decides how
many executions process the requests.
A group is an ordinary batch: its raw object holds the members' events one after the other (the
member at `first_index` has the group indexes `first_index + i`), and the workflow runs it like
any other, with every guarantee (retries, exactly-once curated records, insights counted once).
Locally its members are marked `grouped`, pointing at it, in the same write that records it; on AWS
the request index lists them (`group_and_start`), and no record is kept per request.

A grouped request's outcome (`GET /batches/{id}`) is derived from its group when asked: the
group's status, the request's own rejections (at the indexes of its own body), and its valid events
counted as curated or duplicates by the curated store's owner of each event id.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.batch_ids import group_batch_id, queued_id_facts
from eventpipe.core.model import BatchRecord, BatchStatus
from eventpipe.core.queued import GROUPABLE_SOURCE, IndexedRequest
from eventpipe.core.rawbatch import RawBatch, store_raw

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from eventpipe.core.model import Rejection
    from eventpipe.core.ports import BatchStore, RawBucket, RequestIndex, WorkflowStarter

GROUP_SOURCE = "group"


def span(raw: RawBatch) -> int:
    """How many group indexes a member takes: one past its largest position (NDJSON counts lines from 1)."""
    return 1 + max([*raw.positions, *(int(r["index"]) for r in raw.refused)], default=-1)


def merge(members: Sequence[RawBatch]) -> tuple[RawBatch, list[tuple[str, int]]]:
    """The group's raw batch, and each member's `(batch_id, first_index)` in it."""
    group = RawBatch(
        batch_id=group_batch_id([m.batch_id for m in members]),
        source=GROUP_SOURCE,
        received_at_ms=min(m.received_at_ms for m in members),  # freshness counts from the oldest request
    )
    firsts: list[tuple[str, int]] = []
    offset = 0
    for raw in members:
        firsts.append((raw.batch_id, offset))
        group.requests.append((len(group.events), raw.request))  # each request's app, address, user agent
        group.events.extend(raw.events)
        group.positions.extend(offset + p for p in raw.positions)
        group.refused.extend({**r, "index": offset + int(r["index"])} for r in raw.refused)
        offset += span(raw)
    if not any(facts for _, facts in group.requests):
        group.requests = []
    group.members = firsts
    return group, firsts


def take(pending: Sequence[BatchRecord], *, max_events: int) -> list[BatchRecord]:
    """The oldest groupable request batches whose events fit one batch (at least one)."""
    chosen: list[BatchRecord] = []
    total = 0
    for record in pending:
        if record.source != GROUPABLE_SOURCE:
            continue
        if chosen and total + record.received > max_events:
            break
        chosen.append(record)
        total += record.received
    return chosen


def is_due(chosen: Sequence[BatchRecord], *, max_events: int, window_ms: int, now_ms: int) -> bool:
    """Run a group now when it is full, or when its oldest request has waited the batching window."""
    return bool(chosen) and (
        sum(r.received for r in chosen) >= max_events or now_ms - chosen[0].received_at_ms >= window_ms
    )


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What became of one grouped request's events."""

    status: BatchStatus
    curated: int
    duplicates: int
    rejections: list[Rejection]  # at the request's own indexes (as in its 202's `errors`)


def request_outcome(
    member: BatchRecord,
    group: BatchRecord,
    group_raw: RawBatch,
    group_rejections: Sequence[Rejection],
    owners: Mapping[str, str],
) -> RequestOutcome:
    """A grouped request's outcome, from its group's. `owners` maps the group's valid event ids (lower
    case) to the batch that stored each: an event is curated by this request when the group stored
    it and no earlier index of the group carries the same id (the curated store's first-position rule).
    """
    low, high = member_range(member, group_raw)
    mine = [r for r in group_rejections if low <= r.index < high]
    rejections = [_reindexed(r, member.batch_id, low) for r in mine]
    if group.status is not BatchStatus.DONE:
        return RequestOutcome(group.status, 0, 0, rejections)
    refused = {r.index for r in group_rejections}
    curated = duplicates = 0
    seen: set[str] = set()
    for position, event_id in valid_event_ids(group_raw, refused, below=high):
        is_new = event_id not in seen and owners.get(event_id) == group.batch_id
        seen.add(event_id)
        if low <= position < high:
            curated += is_new
            duplicates += not is_new
    return RequestOutcome(group.status, curated, duplicates, rejections)


def member_range(member: BatchRecord, group_raw: RawBatch) -> tuple[int, int]:
    """The group indexes of a member's events: from its first index to the next member's."""
    firsts = sorted(first for _, first in group_raw.members)
    later = [first for first in firsts if first > member.first_index]
    return member.first_index, later[0] if later else span(group_raw)


def valid_event_ids(raw: RawBatch, refused: set[int], *, below: int | None = None) -> list[tuple[int, str]]:
    """`(position, event id in lower case)` of the events not refused, in order; only those before
    position `below` if given (a member's outcome needs no later event: none is parsed)."""
    ids: list[tuple[int, str]] = []
    for position, data in zip(raw.positions, raw.events, strict=True):
        if below is not None and position >= below:
            break  # positions ascend
        if position in refused:
            continue
        event: Any = orjson.loads(data)  # not refused, so a JSON object with a string event_id
        ids.append((position, str(event["event_id"]).lower()))
    return ids


def _reindexed(rejection: Rejection, batch_id: str, offset: int) -> Rejection:
    return replace(rejection, batch_id=batch_id, index=rejection.index - offset)


# --- On AWS: requests travel by a delivery stream, and ingest forms the groups from its objects ---------


def encode_message(raw: RawBatch) -> bytes:
    """A queued request as one line of text: gzip then base64 (a delivered object is these lines, one
    per request, and events are JSON that compresses several times over)."""
    return base64.b64encode(gzip.compress(raw.encode(), compresslevel=5))


def decode_message(body: str | bytes, *, max_bytes: int) -> RawBatch:
    """The inverse of `encode_message`, reading at most `max_bytes` decompressed; ValueError if it is not one."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(base64.b64decode(body, validate=True))) as stream:
            data = stream.read(max_bytes + 1)
    except (OSError, EOFError, binascii.Error) as exc:
        raise ValueError(f"not a queued request: {exc}") from exc
    if len(data) > max_bytes:
        raise ValueError(f"a queued request larger than {max_bytes} bytes")
    try:
        raw = RawBatch.decode(data)
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"not a queued request: {exc}") from exc
    if queued_id_facts(raw.batch_id) is None:
        raise ValueError(f"not a queued request: id {raw.batch_id[:40]!r}")
    return raw


def read_requests(lines: Iterable[bytes], *, max_bytes: int) -> tuple[list[RawBatch], int]:
    """The requests of a delivered object (one `encode_message` line each), first copy of each id, in
    order; and how many lines were not requests (logged by the caller, never retried)."""
    requests: dict[str, RawBatch] = {}
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            raw = decode_message(line.strip(), max_bytes=max_bytes)
        except ValueError:
            bad += 1
            continue
        requests.setdefault(raw.batch_id, raw)  # a stream delivers at least once: a copy is dropped
    return list(requests.values()), bad


def chunks(members: Sequence[RawBatch], *, max_events: int) -> list[list[RawBatch]]:
    """Consecutive members whose events fit one batch (a member larger than that is a group alone)."""
    out: list[list[RawBatch]] = []
    events = 0
    for raw in members:
        if not out or events + raw.received > max_events:
            out.append([])
            events = 0
        out[-1].append(raw)
        events += raw.received
    return out


def group_and_start(
    requests: Sequence[RawBatch],
    *,
    bucket: RawBucket,
    batches: BatchStore,
    index: RequestIndex,
    starter: WorkflowStarter,
    max_events: int,
) -> tuple[list[BatchRecord], int]:
    """Make delivered requests group batches and start one execution each; the groups' records, and
    how many of the requests were new (not listed in a group already).

    Safe to run again for the same object (S3 events and their invocations come at least once):
    a group's id comes from its members, so the same requests make the same group, found by its
    record; a request the index lists in a group already stays there (that group is started again
    if still pending), so a copy delivered in another object is not processed twice. Order per
    group: raw object, record, index, start; a crash between them is finished by the next delivery.
    """
    known = index.groups_of([raw.batch_id for raw in requests])
    for group_id in sorted({entry.group_id for entry in known.values()}):
        existing = batches.get(group_id)
        if existing is not None and existing.status is BatchStatus.PENDING:
            starter.start(existing.batch_id, existing.raw_key)
    fresh = [raw for raw in requests if raw.batch_id not in known]
    records: list[BatchRecord] = []
    for chunk in chunks(fresh, max_events=max_events):
        group, firsts = merge(chunk)
        existing = batches.get(group.batch_id)
        if existing is not None and existing.status is BatchStatus.DONE:
            records.append(existing)
            continue
        record = existing or store_raw(bucket, group)
        if existing is None:
            batches.create(record)
        index.add([IndexedRequest(batch_id, group.batch_id, first) for batch_id, first in firsts])
        starter.start(record.batch_id, record.raw_key, retry=record.status is BatchStatus.FAILED)
        records.append(record)
    return records, len(fresh)

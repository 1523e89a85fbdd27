"""Micro-batching: the raw batches of many small requests become one group batch, one workflow execution.

Each request is still stored durably and recorded as its own batch before its 202, so grouping
changes nothing a client was promised; it only decides how many executions process the requests.
A group is an ordinary batch: its raw object holds the members' events one after the other (the
member at `first_index` has the group indexes `first_index + i`), and the workflow runs it like
any other, with every guarantee (retries, exactly-once curated records, insights counted once).
Its members are marked `grouped`, pointing at it, in the same write that records it.

A grouped request's outcome (`GET /batches/{id}`) is derived from its group when asked: the
group's status, the request's own rejections (at the indexes of its own body), and its valid events
counted as curated or duplicates by the curated store's owner of each event id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.model import BatchStatus
from eventpipe.core.rawbatch import RawBatch

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from eventpipe.core.model import BatchRecord, Rejection

GROUP_SOURCE = "group"
GROUPABLE_SOURCE = "http"  # request batches; file batches are full already


def group_id_of(member_ids: Sequence[str]) -> str:
    """The same members always make the same group id, so forming a group again after a crash rewrites
    the same object instead of leaving a second one."""
    return "g" + hashlib.sha256("\n".join(member_ids).encode()).hexdigest()[:32]


def span(raw: RawBatch) -> int:
    """How many group indexes a member takes: one past its largest position (NDJSON counts lines from 1)."""
    return 1 + max([*raw.positions, *(int(r["index"]) for r in raw.refused)], default=-1)


def merge(members: Sequence[RawBatch]) -> tuple[RawBatch, list[tuple[str, int]]]:
    """The group's raw batch, and each member's `(batch_id, first_index)` in it."""
    group = RawBatch(
        batch_id=group_id_of([m.batch_id for m in members]),
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
    member_raw: RawBatch,
    group: BatchRecord,
    group_raw: RawBatch,
    group_rejections: Sequence[Rejection],
    owners: Mapping[str, str],
) -> RequestOutcome:
    """A grouped request's outcome, from its group's. `owners` maps the group's valid event ids (lower
    case) to the batch that stored each: an event is curated by this request when the group stored
    it and no earlier index of the group carries the same id (the curated store's first-position rule).
    """
    low, high = member.first_index, member.first_index + span(member_raw)
    mine = [r for r in group_rejections if low <= r.index < high]
    rejections = [_reindexed(r, member.batch_id, low) for r in mine]
    if group.status is not BatchStatus.DONE:
        return RequestOutcome(group.status, 0, 0, rejections)
    refused = {r.index for r in group_rejections}
    curated = duplicates = 0
    seen: set[str] = set()
    for position, event_id in valid_event_ids(group_raw, refused):
        is_new = event_id not in seen and owners.get(event_id) == group.batch_id
        seen.add(event_id)
        if low <= position < high:
            curated += is_new
            duplicates += not is_new
    return RequestOutcome(group.status, curated, duplicates, rejections)


def valid_event_ids(raw: RawBatch, refused: set[int]) -> list[tuple[int, str]]:
    """`(position, event id in lower case)` of the events not refused, in order."""
    ids: list[tuple[int, str]] = []
    for position, data in zip(raw.positions, raw.events, strict=True):
        if position in refused:
            continue
        event: Any = orjson.loads(data)  # not refused, so a JSON object with a string event_id
        ids.append((position, str(event["event_id"]).lower()))
    return ids


def _reindexed(rejection: Rejection, batch_id: str, offset: int) -> Rejection:
    return replace(rejection, batch_id=batch_id, index=rejection.index - offset)

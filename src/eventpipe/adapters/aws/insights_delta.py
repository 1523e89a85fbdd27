"""A batch's insights delta: what one batch adds to the minutes it touches, as one small DynamoDB item.

Why deltas: a minute's sketch item is about 14 KB at 100 events/s, and DynamoDB bills a write by the
size of the whole item. When every batch merged its sketches into the minute items itself, each
batch rewrote ~14 KB per minute it touched (88 write units a batch, $0.55 per million events). A
batch now puts one delta item of about 1.5 KB (2 write units): its counters and its own small
sketches per minute and segment. The insights table's stream hands each new delta to the fold
(insights_fold.py), which merges a window's deltas into the minute items once per invocation.

Item: `pk = delta#<batch_id>`, `sk = <chunk number>` (one chunk per UTC hour of the batch and at most
`CHANGES_PER_CHUNK` minutes and segments: the same chunks on every retry), `c` (B) the changes'
counters as compressed JSON, `x` (L of B) their sketches in the order `c` names them, `expires_at`.
The put is conditional (`attribute_not_exists`): a retried ProcessBatch finds its delta there and
adds no stream record. A delta is deleted by TTL after `DELTA_TTL_S`, when the stream (24 hours)
has long handed it on; if a batch is run again after that, the fold's ids make its second delta
count nothing (insights_fold.py).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.adapters.aws.tables import TTL_ATTRIBUTE
from eventpipe.core.aggregate import hour_of, merged_users
from eventpipe.core.insight_counters import USERS, minute_changes
from eventpipe.core.segments import DEFAULT_SEGMENT

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from eventpipe.core.aggregate import BatchAggregate

DELTA_PREFIX = "delta#"
DELTA_TTL_S = 2 * 86_400
# A delta item's bounds, far below DynamoDB's 400 KB: minutes and segments, and bytes of sketches (a
# sketch's size depends only on the batch's new events, so a retry cuts the same chunks).
CHANGES_PER_CHUNK = 200
SKETCH_BYTES_PER_CHUNK = 256 * 1024
ID_BYTES = 8  # a delta's id in a minute item's `ids`: 8 bytes of BLAKE2b (collisions: ~1e-13 a minute)


@dataclass(slots=True)
class MinuteChange:
    """What one batch adds to one minute and segment: counters to add, sketches to unite."""

    minute: int
    segment: str = DEFAULT_SEGMENT
    counters: dict[str, str] = field(default_factory=dict)  # attribute -> DynamoDB number text
    sketches: dict[str, bytes] = field(default_factory=dict)  # "users", "s0".. -> serialized sketch


@dataclass(frozen=True, slots=True)
class Delta:
    """One delta item read back: its id (the same for every put of the same batch chunk) and changes."""

    id: bytes
    changes: list[MinuteChange]


def number_text(value: float) -> str:
    """A float as a DynamoDB number: the shortest digits that read back as the same float, no exponent."""
    return format(Decimal(repr(value)), "f")


def delta_id(batch_id: str, chunk: int) -> bytes:
    return hashlib.blake2b(f"{batch_id}#{chunk}".encode(), digest_size=ID_BYTES).digest()


def batch_changes(aggregate: BatchAggregate) -> list[MinuteChange]:
    """The batch's changes by minute and segment, sorted (core/insight_counters.py), as a delta holds them:
    numbers as DynamoDB number text, sketches serialized."""
    return [
        MinuteChange(
            change.minute,
            change.segment,
            {
                name: number_text(value) if isinstance(value, float) else str(value)
                for name, value in change.counters.items()
            },
            {name: _serialized(name, sketch) for name, sketch in change.sketches.items()},
        )
        for change in minute_changes(aggregate)
    ]


def _serialized(name: str, sketch: Any) -> bytes:
    if name == USERS:
        return merged_users(sketch, None)  # through a union: 4 bits a register once dense
    return bytes(sketch.compact().serialize(compress=True))


def delta_items(batch_id: str, aggregate: BatchAggregate, *, now_s: int) -> list[dict[str, Any]]:
    """The batch's delta items (attribute-value form), one per chunk: the same keys on every retry.

    A chunk holds one UTC hour's changes (most batches have one), cut where it would pass
    `CHANGES_PER_CHUNK` changes or `SKETCH_BYTES_PER_CHUNK` bytes of sketches.
    """
    chunks: list[list[MinuteChange]] = []
    hour = size = -1
    for change in batch_changes(aggregate):
        grows = sum(len(blob) for blob in change.sketches.values())
        if (
            hour_of(change.minute) != hour
            or len(chunks[-1]) >= CHANGES_PER_CHUNK
            or size + grows > SKETCH_BYTES_PER_CHUNK
        ):
            chunks.append([])
            hour, size = hour_of(change.minute), 0
        chunks[-1].append(change)
        size += grows
    return [_item(batch_id, number, chunk, now_s) for number, chunk in enumerate(chunks)]


def _item(batch_id: str, number: int, changes: list[MinuteChange], now_s: int) -> dict[str, Any]:
    described = [[c.minute, c.segment, c.counters, list(c.sketches)] for c in changes]
    return {
        "pk": {"S": f"{DELTA_PREFIX}{batch_id}"},
        "sk": {"S": str(number)},
        "c": {"B": zlib.compress(orjson.dumps(described))},
        "x": {"L": [{"B": blob} for c in changes for blob in c.sketches.values()]},
        TTL_ATTRIBUTE: {"N": str(now_s + DELTA_TTL_S)},
    }


def decode_delta(item: Mapping[str, Any]) -> Delta:
    """A delta item as boto3 returns it or as a stream record's `NewImage` holds it (binary in base64)."""
    batch_id = item["pk"]["S"].removeprefix(DELTA_PREFIX)
    blobs = iter(_binary(value["B"]) for value in item.get("x", {}).get("L", []))
    changes = []
    for minute, segment, counters, names in orjson.loads(zlib.decompress(_binary(item["c"]["B"]))):
        sketches = {str(name): next(blobs) for name in names}
        changes.append(MinuteChange(int(minute), str(segment), {str(k): str(v) for k, v in counters.items()}, sketches))
    return Delta(delta_id(batch_id, int(item["sk"]["S"])), changes)


def is_delta(keys: Mapping[str, Any]) -> bool:
    return str(keys.get("pk", {}).get("S", "")).startswith(DELTA_PREFIX)


def _binary(value: bytes | str) -> bytes:
    return base64.b64decode(value) if isinstance(value, str) else bytes(value)


def stream_deltas(records: Iterable[Mapping[str, Any]]) -> list[Delta]:
    """The deltas inserted, from a DynamoDB stream event's records (other records are skipped)."""
    deltas = []
    for record in records:
        image = record.get("dynamodb", {}).get("NewImage")
        if record.get("eventName") == "INSERT" and image and is_delta(image):
            deltas.append(decode_delta(image))
    return deltas

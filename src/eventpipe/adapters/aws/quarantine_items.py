"""The quarantine's items in DynamoDB's state table, and how records map to them.

A batch's rejections live in the batch's partition, `pk = batch#<batch_id>`, in two shapes:

- a *chunk*, `sk = rej#+<chunk, 8 digits>`: every record of indexes `chunk * CHUNK_EVENTS` to
  `chunk * CHUNK_EVENTS + CHUNK_EVENTS - 1`, one zlib-compressed JSON list in `records`, and a
  version `v` that every rewrite of the item raises (read, change, write only if `v` is unchanged);
- a *record of its own*, `sk = rej#<index, 10 digits>`: one record whose compressed text is over
  `OWN_ITEM_BYTES`, so that a chunk stays far below DynamoDB's 400 KB item limit
  (`CHUNK_EVENTS * OWN_ITEM_BYTES` = 300 KB). Every record was kept so before the chunks, so items
  written then are read as they are.

Why: DynamoDB bills a write per started KB of each item. Ten rejected events of a 100-event batch
took ten items of about 1 KB (ten write units); compressed together they take one item of 2 to 3 KB.

`+` sorts before the digits, so a Query or Scan of `begins_with(sk, "rej#")` returns a batch's
chunks first, then its records of their own. Where an index has both (a rewrite moving a record
between shapes was interrupted), the chunk's copy is the record: readers skip the other.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.adapters.aws.inflate import inflate
from eventpipe.adapters.aws.tables import batch_pk
from eventpipe.core.errors import StorageError
from eventpipe.core.model import Reason, Rejection

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

REJECTION_PREFIX = "rej#"
CHUNK_PREFIX = "rej#+"
CHUNK_EVENTS = 100
OWN_ITEM_BYTES = 3_000  # a record compressed larger than this keeps an item of its own
MAX_RECORDS_BYTES = 380_000  # a chunk's compressed records: under the 400 KB item limit with its keys
MAX_INFLATED_BYTES = 32 * 1024 * 1024  # what one stored item may expand to; more is a corrupt item


class CorruptQuarantineItemError(StorageError):
    """A stored quarantine item that cannot be read: it is left as it is, and no write replaces it."""


def rejection_sk(index: int) -> str:
    return f"{REJECTION_PREFIX}{index:010d}"  # zero-padded, so the sort key orders by index


def chunk_of(index: int) -> int:
    return index // CHUNK_EVENTS


def chunk_sk(chunk: int) -> str:
    return f"{CHUNK_PREFIX}{chunk:08d}"


def is_chunk(item: Mapping[str, AttributeValueTypeDef]) -> bool:
    return item["sk"]["S"].startswith(CHUNK_PREFIX)


def item_name(item: Mapping[str, AttributeValueTypeDef]) -> str:
    return f"{item.get('pk', {}).get('S', '?')} / {item.get('sk', {}).get('S', '?')}"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk item as read: its records by index, and the version a rewrite must find unchanged."""

    batch_id: str
    chunk: int
    records: dict[int, Rejection]
    version: int  # 0: the item does not exist


def record_fields(rejection: Rejection) -> dict[str, Any]:
    return {
        "index": rejection.index,
        "stage": rejection.stage,
        "event_id": rejection.event_id,
        "reasons": [reason.as_dict() for reason in rejection.reasons],
        "raw": rejection.raw,
    }


def compressed(value: object) -> bytes:
    return zlib.compress(orjson.dumps(value), 6)


def keeps_own_item(rejection: Rejection) -> bool:
    """Whether a record is stored in an item of its own (too large to share a chunk)."""
    return len(compressed(record_fields(rejection))) > OWN_ITEM_BYTES


def chunk_item(batch_id: str, chunk: int, records: Iterable[Rejection], version: int) -> Item:
    """The item of a chunk holding `records` (all of `batch_id`, indexes in `chunk`), at `version`."""
    data = compressed([record_fields(r) for r in sorted(records, key=lambda r: r.index)])
    if len(data) > MAX_RECORDS_BYTES:  # cannot happen below OWN_ITEM_BYTES each; refuse rather than lose
        raise StorageError(
            f"the quarantine records of {batch_pk(batch_id)} / {chunk_sk(chunk)} take {len(data)} bytes"
            f" compressed, over {MAX_RECORDS_BYTES}: not written"
        )
    return {
        "pk": {"S": batch_pk(batch_id)},
        "sk": {"S": chunk_sk(chunk)},
        "batch_id": {"S": batch_id},
        "v": {"N": str(version)},
        "records": {"B": data},
    }


def own_item(rejection: Rejection) -> Item:
    """The item of a record kept on its own: reasons and text in one compressed `record` attribute."""
    item: Item = {
        "pk": {"S": batch_pk(rejection.batch_id)},
        "sk": {"S": rejection_sk(rejection.index)},
        "batch_id": {"S": rejection.batch_id},
        "index": {"N": str(rejection.index)},
        "stage": {"S": rejection.stage},
        "record": {"B": compressed({"reasons": record_fields(rejection)["reasons"], "raw": rejection.raw})},
    }
    if rejection.event_id is not None:
        item["event_id"] = {"S": rejection.event_id}
    return item


def read_chunk(item: Mapping[str, AttributeValueTypeDef]) -> Chunk:
    """A chunk item's records and version; `CorruptQuarantineItemError` when it cannot be read."""
    try:
        batch_id = item["batch_id"]["S"]
        chunk = int(item["sk"]["S"][len(CHUNK_PREFIX) :])
        fields = _inflate(item["records"]["B"])
        records = {f["index"]: _rejection(batch_id, f) for f in fields}
        return Chunk(batch_id, chunk, records, int(item["v"]["N"]))
    except CorruptQuarantineItemError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptQuarantineItemError(f"cannot read quarantine item {item_name(item)}: {exc!r}") from exc


def read_own(item: Mapping[str, AttributeValueTypeDef]) -> Rejection:
    """A record kept in an item of its own (also any written before the chunks)."""
    try:
        if "record" in item:
            record = _inflate(item["record"]["B"])
            reasons, raw = record["reasons"], record["raw"]
        else:  # written before the records were compressed: plain `reasons` (JSON) and `raw`
            reasons, raw = orjson.loads(item["reasons"]["S"]), item["raw"]["S"]
        return Rejection(
            batch_id=item["batch_id"]["S"],
            index=int(item["index"]["N"]),
            stage=item["stage"]["S"],
            reasons=tuple(Reason(**reason) for reason in reasons),
            raw=raw,
            event_id=item["event_id"]["S"] if "event_id" in item else None,
        )
    except CorruptQuarantineItemError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptQuarantineItemError(f"cannot read quarantine item {item_name(item)}: {exc!r}") from exc


def read_batch(items: Iterable[Mapping[str, AttributeValueTypeDef]]) -> tuple[dict[int, Chunk], dict[int, Rejection]]:
    """A batch's items as its chunks (by chunk number) and its records of their own (by index)."""
    chunks: dict[int, Chunk] = {}
    own: dict[int, Rejection] = {}
    for item in items:
        if is_chunk(item):
            chunk = read_chunk(item)
            chunks[chunk.chunk] = chunk
        else:
            record = read_own(item)
            own[record.index] = record
    return chunks, own


def merged(chunks: Mapping[int, Chunk], own: Mapping[int, Rejection]) -> list[Rejection]:
    """One record per index, in index order: a chunk's copy before one kept on its own."""
    records = dict(own)
    for chunk in chunks.values():
        records.update(chunk.records)
    return [records[index] for index in sorted(records)]


def _inflate(data: bytes) -> Any:
    return orjson.loads(inflate(data, MAX_INFLATED_BYTES))


def _rejection(batch_id: str, fields: Mapping[str, Any]) -> Rejection:
    return Rejection(
        batch_id=batch_id,
        index=int(fields["index"]),
        stage=str(fields["stage"]),
        reasons=tuple(Reason(**reason) for reason in fields["reasons"]),
        raw=str(fields["raw"]),
        event_id=fields["event_id"],
    )

"""`write_lake`: the AWS lake written from the curated table's stream, each curated event once.

The curated table's stream (NEW_IMAGE) invokes `write_lake` with the INSERT records of a batching
window (the event source mapping's filter drops MODIFY and REMOVE records: a retried ProcessBatch
rewriting its own items, TTL expiry, erasure). Each INSERT is a curated event stored for the first
time: the conditional put of the curated item (dynamodb_curated.py) lets one batch only insert an
event, whatever is retried, replayed or redelivered. The item holds the event's JSON (zlib) and its
`batch_id`: every lake column comes from it.

For each hour its events fall in, an invocation writes one Parquet object, named after the first of
its records in that hour: `s-<sequence number>-<event id>.parquet` (s3_lake.py). Lambda retries a
failed stream batch from the same position of the shard, with the same records (no bisection, no
partial batch response), until it succeeds or its records leave the stream (24 hours); so a retry
writes the same keys again, in place, with the same rows. Even a retry of another size would add
nothing twice: the batches after a failure start at the same record and cover the shard in order, so
the first record in an hour of the batch that holds a failed attempt's first record in that hour is
that record again, and its object is overwritten.

A record that makes no row (not an INSERT of a curated item, its payload not zlib or not a curated
event) is not dropped silently and does not block the shard: the batch's unreadable records are
written as they came to `lake-unreadable/<sequence>-<event id>.json`, the function logs an error and
counts them (metric `LakeRecordsUnreadable`).

Erasure: events named by a live erasure tombstone (erasure_tombstones.py) and received before that
erasure started are left out, and their curated items deleted (the erasure may have passed them).
"""

from __future__ import annotations

import hashlib
import logging
import re
from base64 import b64decode
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import orjson

from eventpipe.adapters.aws.dynamodb_calls import DEFAULT_BACKOFF, batch_delete
from eventpipe.adapters.aws.erasure_tombstones import erased_since
from eventpipe.adapters.aws.inflate import inflate
from eventpipe.adapters.aws.s3_lake import stream_file_key, unreadable_key

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from eventpipe.adapters.aws.erasure_tombstones import ErasureTombstones, Tombstone
    from eventpipe.adapters.aws.retry import Backoff
    from eventpipe.core.ports import Clock, RawBucket
    from eventpipe.erasure.target import ErasureTarget

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 1024 * 1024  # a curated event's JSON, decompressed: far above any the pipeline stores
_NAME = re.compile(r"[^0-9A-Za-z]")


class LakeWriteAnswer(TypedDict):
    """What `write_lake` answers and logs: the records handed over, and what became of them."""

    records: int  # records in the invocation
    events: int  # rows written to the lake
    objects: int  # Parquet objects written (one per hour the events fall in)
    unreadable: int  # records written to lake-unreadable/ instead
    erased: int  # events left out for an erasure (their curated items deleted)
    ignored: int  # records that are not inserts (the filter should have dropped them)


@dataclass(frozen=True, slots=True)
class _Insert:
    """An INSERT record of the curated table, decoded."""

    position: int  # in the invocation's records
    sequence: str
    event_key: str
    event_id: str  # the item's key: the event id in lower case
    batch_id: str
    payload: bytes  # the curated event's JSON


class LakeStreamWriter:
    def __init__(
        self,
        analytics: RawBucket,
        tombstones: ErasureTombstones,
        curated_table: str,
        dynamodb: DynamoDBClient,
        clock: Clock,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self._analytics = analytics
        self._tombstones = tombstones
        self._curated_table = curated_table
        self._dynamodb = dynamodb
        self._clock = clock
        self._backoff = backoff

    def write(self, records: Sequence[Any]) -> LakeWriteAnswer:
        """Write the curated events of `records` (a stream event's `Records`); raise to have them retried."""
        from eventpipe.lake.columns import LakeRows
        from eventpipe.lake.parquet import to_parquet

        inserts: list[_Insert] = []
        unreadable: list[tuple[int, Any]] = []
        ignored = 0
        for position, record in enumerate(records):
            if isinstance(record, dict) and record.get("eventName") in ("MODIFY", "REMOVE"):
                ignored += 1
                continue
            decoded = _decode(position, record)
            if decoded is None:
                unreadable.append((position, record))
            else:
                inserts.append(decoded)
        rows = LakeRows()
        for insert in inserts:
            rows.add(insert.payload, insert.batch_id)
        tables = rows.tables()
        first: dict[str, _Insert] = {}
        for insert in inserts:
            first.setdefault(insert.event_id, insert)
        made_rows = {str(e).lower() for table in tables.values() for e in table.column("event_id").to_pylist()}
        unreadable += [(i.position, records[i.position]) for i in inserts if i.event_id not in made_rows]
        tables, erased = self._without_erased(tables)
        events = objects = 0
        for partition, table in tables.items():
            if not table.num_rows:
                continue
            ids = {str(e).lower() for e in table.column("event_id").to_pylist()}
            head = min((insert for event_id, insert in first.items() if event_id in ids), key=_at)
            self._analytics.put(stream_file_key(partition, head.sequence, head.event_key), to_parquet(table))
            events += table.num_rows
            objects += 1
        if unreadable:
            self._keep_unreadable(sorted(unreadable, key=lambda pair: pair[0]))
        return {
            "records": len(records),
            "events": events,
            "objects": objects,
            "unreadable": len(unreadable),
            "erased": erased,
            "ignored": ignored,
        }

    def _without_erased(self, tables: dict[str, pa.Table]) -> tuple[dict[str, pa.Table], int]:
        """The tables less the rows of erased users received before their erasure; those curated items deleted."""
        if not tables:
            return tables, 0
        tombstones = self._tombstones.live(self._clock.now_ms())
        if not tombstones:
            return tables, 0
        import pyarrow as pa

        kept_tables: dict[str, pa.Table] = {}
        erased_ids: list[str] = []
        for partition, table in tables.items():
            keep = [
                not _erased(tombstones, user, anonymous, received)
                for user, anonymous, received in zip(
                    table.column("user_id").to_pylist(),
                    table.column("anonymous_id").to_pylist(),
                    table.column("received_at").cast(pa.int64()).to_pylist(),
                    strict=True,
                )
            ]
            ids = table.column("event_id").to_pylist()
            erased_ids += [str(event_id).lower() for event_id, kept in zip(ids, keep, strict=True) if not kept]
            kept_tables[partition] = table.filter(pa.array(keep, type=pa.bool_()))
        if erased_ids:
            keys: list[Any] = [{"event_id": {"S": event_id}} for event_id in sorted(set(erased_ids))]
            batch_delete(self._dynamodb, self._curated_table, keys, self._backoff)
        return kept_tables, len(erased_ids)

    def _keep_unreadable(self, unreadable: list[tuple[int, Any]]) -> None:
        position, record = unreadable[0]
        sequence, event_key = _names(record, position)
        body = orjson.dumps([r for _, r in unreadable], default=str)
        self._analytics.put(unreadable_key(sequence, event_key), body)
        log.error("%d stream records made no lake row; kept in the analytics bucket", len(unreadable))


def without_target(data: bytes, target: ErasureTarget) -> bytes | None:
    """A `lake-unreadable/` object without the records of `target`'s events; None when it holds none.

    A record's curated event is read where it can be (base64, zlib); a record that cannot be read
    matches when its text holds one of the ids at all, as malformed quarantine text does.
    """
    try:
        records = orjson.loads(data)
    except orjson.JSONDecodeError:
        return b"[]" if target.may_hold(data) else None
    if not isinstance(records, list):
        return b"[]" if target.may_hold(data) else None
    kept = [record for record in records if not _names_target(record, target)]
    return None if len(kept) == len(records) else orjson.dumps(kept)


def _names_target(record: Any, target: ErasureTarget) -> bool:
    payload = _payload(record)
    if payload is not None and target.matches_line(payload):
        return True
    return target.may_hold(orjson.dumps(record, default=str))


def _at(insert: _Insert) -> int:
    return insert.position


def _erased(tombstones: list[Tombstone], user: str | None, anonymous: str | None, received_ms: int | None) -> bool:
    started = max((s for s in (erased_since(tombstones, user), erased_since(tombstones, anonymous)) if s), default=None)
    if started is None:
        return False
    return received_ms is None or received_ms <= started  # received after the erasure started: new data


def _decode(position: int, record: Any) -> _Insert | None:
    """An INSERT record of a curated item as Lambda hands it over (binary values in base64), or None."""
    payload = _payload(record)
    if payload is None:
        return None
    try:
        image = record["dynamodb"]["NewImage"]
        sequence, event_key = _names(record, position)
        return _Insert(position, sequence, event_key, str(image["event_id"]["S"]), str(image["batch_id"]["S"]), payload)
    except (KeyError, TypeError):
        return None


def _payload(record: Any) -> bytes | None:
    """The curated event's JSON a record's new image holds (base64, zlib), or None."""
    try:  # larger than any curated event, cut short, not zlib or not base64 (a ValueError): no payload
        return inflate(b64decode(record["dynamodb"]["NewImage"]["payload"]["B"], validate=True), MAX_EVENT_BYTES)
    except (KeyError, TypeError, ValueError):
        return None


def _names(record: Any, position: int) -> tuple[str, str]:
    """The record's sequence number and event id as key-safe text (both are digits and hex from AWS)."""
    change = record.get("dynamodb") if isinstance(record, dict) else None
    sequence = change.get("SequenceNumber") if isinstance(change, dict) else None
    event_key = record.get("eventID") if isinstance(record, dict) else None
    sequence_text = _NAME.sub("", str(sequence))[:64] if sequence else ""
    key_text = _NAME.sub("", str(event_key))[:64] if event_key else ""
    if not sequence_text or not key_text:  # not a stream record: named after its content, the same on a retry
        digest = hashlib.sha256(orjson.dumps(record, default=str)).hexdigest()[:32]
        return sequence_text or f"x{position}", key_text or digest
    return sequence_text, key_text

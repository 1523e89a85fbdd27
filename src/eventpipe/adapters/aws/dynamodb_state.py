"""Batch records in DynamoDB's state table.

A batch's record lives in its partition, `pk = batch#<batch_id>`, at `sk = batch`; its quarantined
events share the partition (`dynamodb_quarantine.py`). A batch record carries
`open = "unfinished#<shard>"` until it is done; the sparse `unfinished` index (`open`,
`received_at_ms`) therefore holds exactly the pending and failed batches, and recovery
finds them without a Scan. The shard (a hash of the batch id, one of `UNFINISHED_SHARDS`) spreads
the index's writes (two per batch: created, done) over that many partitions instead of one, which
would throttle the table's writes past about 1,000 batches/s; a listing queries every shard and
merges them, oldest first.

Every call retries throttling with the backoff (on top of botocore's own few retries); any other
vendor error, or throttling that outlasts the backoff, becomes `StorageError` here.
"""

from __future__ import annotations

import heapq
import zlib
from typing import TYPE_CHECKING

from eventpipe.adapters.aws.dynamodb_calls import DynamoTable, attempt, conditional, paged_items
from eventpipe.adapters.aws.tables import UNFINISHED_INDEX, batch_pk
from eventpipe.core.model import BatchRecord, BatchStatus

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

BATCH_SK = "batch"
UNFINISHED_SHARDS = 16
OPEN_PREFIX = "unfinished#"
LEGACY_OPEN = "1"  # the one key value of records written before the index was sharded; still listed


def open_shard(batch_id: str) -> str:
    """The `unfinished` index key of an unfinished batch: `unfinished#0` to `unfinished#15`, stable per batch."""
    return f"{OPEN_PREFIX}{zlib.crc32(batch_id.encode()) % UNFINISHED_SHARDS}"


def open_keys() -> list[str]:
    """Every key value of the `unfinished` index, the legacy one included."""
    return [f"{OPEN_PREFIX}{shard}" for shard in range(UNFINISHED_SHARDS)] + [LEGACY_OPEN]


class DynamoBatchStore(DynamoTable):
    def create(self, record: BatchRecord) -> bool:
        return conditional(
            self._backoff,
            f"cannot create batch {record.batch_id} in {self._table}",
            lambda: self._client.put_item(
                TableName=self._table, Item=_record_item(record), ConditionExpression="attribute_not_exists(pk)"
            ),
        )

    def get(self, batch_id: str) -> BatchRecord | None:
        answer = attempt(
            self._backoff,
            f"cannot read batch {batch_id} from {self._table}",
            lambda: self._client.get_item(TableName=self._table, Key=self._key(batch_id), ConsistentRead=True),
        )
        return _record(answer["Item"]) if "Item" in answer else None

    def mark_done(self, batch_id: str, curated: int, duplicates: int, rejected: dict[str, int]) -> None:
        # Removing `open` takes the record out of the sparse `unfinished` index. An unknown batch
        # fails the condition and nothing is written, as with the SQLite store.
        conditional(
            self._backoff,
            f"cannot mark batch {batch_id} done in {self._table}",
            lambda: self._client.update_item(
                TableName=self._table,
                Key=self._key(batch_id),
                UpdateExpression="SET #status = :done, curated = :curated, duplicates = :duplicates,"
                " rejected = :rejected, rejected_by_code = :by_code REMOVE #open, #error",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#status": "status", "#open": "open", "#error": "error"},
                ExpressionAttributeValues={
                    ":done": {"S": str(BatchStatus.DONE)},
                    ":curated": _n(curated),
                    ":duplicates": _n(duplicates),
                    ":rejected": _n(sum(rejected.values())),
                    ":by_code": {"M": {code: _n(count) for code, count in rejected.items()}},
                },
            ),
        )

    def mark_failed(self, batch_id: str, error: str) -> None:
        # A late failure of an earlier try never overrides done; `open` stays, so the batch stays unfinished.
        conditional(
            self._backoff,
            f"cannot mark batch {batch_id} failed in {self._table}",
            lambda: self._client.update_item(
                TableName=self._table,
                Key=self._key(batch_id),
                UpdateExpression="SET #status = :failed, #error = :error",
                ConditionExpression="attribute_exists(pk) AND #status <> :done",
                ExpressionAttributeNames={"#status": "status", "#error": "error"},
                ExpressionAttributeValues={
                    ":failed": {"S": str(BatchStatus.FAILED)},
                    ":done": {"S": str(BatchStatus.DONE)},
                    ":error": {"S": error},
                },
            ),
        )

    def unfinished(self) -> list[BatchRecord]:
        """Pending and failed batches, oldest first.

        A global secondary index is eventually consistent: a batch created or finished a moment
        ago may be missing or still listed, so a caller should re-read a record (`get`) before acting.
        """
        shards = [self._unfinished_in(key) for key in open_keys()]
        return list(heapq.merge(*shards, key=lambda record: record.received_at_ms))

    def _unfinished_in(self, open_key: str) -> Iterator[BatchRecord]:
        """One shard of the index, oldest first (every page of its Query)."""
        items = paged_items(
            self._backoff,
            f"cannot list unfinished batches in {self._table}",
            lambda paging: self._client.query(
                TableName=self._table,
                IndexName=UNFINISHED_INDEX,
                KeyConditionExpression="#open = :open",
                ExpressionAttributeNames={"#open": "open"},
                ExpressionAttributeValues={":open": {"S": open_key}},
                ScanIndexForward=True,  # ascending received_at_ms: oldest first
                **paging,
            ),
        )
        return (_record(item) for item in items)

    @staticmethod
    def _key(batch_id: str) -> Item:
        return {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": BATCH_SK}}


def _n(value: int) -> AttributeValueTypeDef:
    return {"N": str(value)}


def _record_item(record: BatchRecord) -> Item:
    item: Item = {
        "pk": {"S": batch_pk(record.batch_id)},
        "sk": {"S": BATCH_SK},
        "batch_id": {"S": record.batch_id},
        "raw_key": {"S": record.raw_key},
        "source": {"S": record.source},
        "received_at_ms": _n(record.received_at_ms),
        "received": _n(record.received),
        "status": {"S": str(record.status)},
        "curated": _n(record.curated),
        "duplicates": _n(record.duplicates),
        "rejected": _n(record.rejected),
        "rejected_by_code": {"M": {code: _n(count) for code, count in record.rejected_by_code.items()}},
    }
    if record.error is not None:
        item["error"] = {"S": record.error}
    if record.group_id is not None:
        item["group_id"] = {"S": record.group_id}
        item["first_index"] = _n(record.first_index)
    if record.status in (BatchStatus.PENDING, BatchStatus.FAILED):  # grouped requests are its group's work
        item["open"] = {"S": open_shard(record.batch_id)}
    return item


def _record(item: Mapping[str, AttributeValueTypeDef]) -> BatchRecord:
    return BatchRecord(
        batch_id=item["batch_id"]["S"],
        raw_key=item["raw_key"]["S"],
        source=item["source"]["S"],
        received_at_ms=int(item["received_at_ms"]["N"]),
        received=int(item["received"]["N"]),
        status=BatchStatus(item["status"]["S"]),
        curated=int(item["curated"]["N"]),
        duplicates=int(item["duplicates"]["N"]),
        rejected=int(item["rejected"]["N"]),
        rejected_by_code={code: int(value["N"]) for code, value in item["rejected_by_code"]["M"].items()},
        error=item["error"]["S"] if "error" in item else None,
        group_id=item["group_id"]["S"] if "group_id" in item else None,
        first_index=int(item["first_index"]["N"]) if "first_index" in item else 0,
    )

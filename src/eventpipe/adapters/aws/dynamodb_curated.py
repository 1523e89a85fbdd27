"""Curated events in DynamoDB: one item per event, keyed by its event id in lower case.

An item is the key, `batch_id` (for the condition below), `event_type`, the payload compressed
(zlib, a binary attribute) and `expires_at`, the DynamoDB TTL attribute. Compressed, a typical
enriched event of about 1 KB takes 600 bytes, so its item stays under 1 KB: one write unit instead
of two, and less storage. The TTL ends an item `ttl_days` after it was written (DynamoDB deletes
expired items within a few days, at no write cost): the table is the deduplication index and the
recent events, not the archive (the raw bucket and the export keep what lasts). An event sent again
after its item expired is curated again.

Each event is written by its own conditional PutItem, `attribute_not_exists(event_id) OR
batch_id = :b`. The condition makes the new-or-duplicate answer exact: when two batches carry the
same event at the same time, exactly one put succeeds and the other gets
ConditionalCheckFailedException, which is the "duplicate" answer. BatchWriteItem is not used:
it cannot carry a condition, so it could not tell which events were new when two batches write
the same event concurrently (a read before the write would race). The `batch_id = :b` half makes
the put retry-safe: a retried step (or a botocore retry of a put that did land) rewrites its own
item and counts the event as new again, as the `CuratedStore` port asks.

One put per event is one round trip per event, so the puts run on a thread pool (boto3 clients
are thread-safe). Throttling is retried per item with the backoff; anything else, or throttling
that outlasts the backoff, raises `StorageError` so that the step fails and Step Functions retries
it: an event is never dropped silently.
"""

from __future__ import annotations

import time
import zlib
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.dynamodb_calls import DEFAULT_BACKOFF, attempt, conditional
from eventpipe.adapters.aws.tables import TTL_ATTRIBUTE, ItemLifetime
from eventpipe.adapters.curated_base import PerEventCuratedStore

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    from eventpipe.adapters.aws.retry import Backoff

_NEW_OR_OURS = "attribute_not_exists(event_id) OR batch_id = :b"
DEFAULT_TTL_DAYS = 7


class DynamoCuratedStore(PerEventCuratedStore):
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_workers: int = 8,
        ttl_days: int = DEFAULT_TTL_DAYS,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        """`max_workers=1` runs the puts inline, in call order (for botocore's Stubber, which answers in order)."""
        super().__init__(max_workers=max_workers)
        self._lifetime = ItemLifetime(ttl_days, now_s)
        self._table = table_name
        self._client: DynamoDBClient = client if client is not None else make_client("dynamodb")
        self._backoff = backoff

    def _put_one(self, batch_id: str, event_id: str, event_type: str, payload: bytes) -> bool:
        """True when stored (now or by this batch before); False when another batch stored it."""
        item: dict[str, AttributeValueTypeDef] = {
            "event_id": {"S": event_id},
            "batch_id": {"S": batch_id},
            "event_type": {"S": event_type},
            "payload": {"B": compress_payload(payload)},
            TTL_ATTRIBUTE: self._lifetime.expires_at(),
        }
        return conditional(
            self._backoff,
            f"cannot put event {event_id} into {self._table}",
            lambda: self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=_NEW_OR_OURS,
                ExpressionAttributeValues={":b": {"S": batch_id}},
            ),
        )

    def owners(self, event_ids: Sequence[str]) -> dict[str, str]:
        """BatchGetItem, 100 keys a call; keys DynamoDB leaves unprocessed (throttling) are asked again."""
        found: dict[str, str] = {}
        keys = sorted({event_id.lower() for event_id in event_ids})
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"event_id": {"S": k}} for k in keys[start : start + 100]],
                    "ProjectionExpression": "event_id, batch_id",
                    "ConsistentRead": True,
                }
            }
            while request:
                pending = request
                answer = attempt(
                    self._backoff,
                    f"cannot read events from {self._table}",
                    lambda pending=pending: self._client.batch_get_item(RequestItems=pending),  # type: ignore[misc]
                )
                for item in answer.get("Responses", {}).get(self._table, []):
                    found[item["event_id"]["S"]] = item["batch_id"]["S"]
                request = dict(answer.get("UnprocessedKeys") or {})
        return found


def compress_payload(payload: bytes) -> bytes:
    """A curated event's JSON as stored: zlib (level 6; 9 saves nothing more on events this small)."""
    return zlib.compress(payload, 6)


def decompress_payload(stored: bytes) -> bytes:
    """The JSON of a stored curated event (`compress_payload` reversed)."""
    return zlib.decompress(stored)

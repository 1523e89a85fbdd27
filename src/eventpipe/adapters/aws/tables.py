"""The DynamoDB tables' keys, in one place: the adapters, the tests and the templates follow these.

- curated: one item per curated event, keyed by `event_id`; `batch_id` tells which batch stored it.
- state: batch records (`pk = batch#<id>`, `sk = batch`) and the quarantine in the same partition
  (`sk = rej#+<chunk>`: the records of 100 indexes in one item; `sk = rej#<index>`: a record too
  large to share one, see `quarantine_items.py`); the sparse `unfinished` index holds only batches
  not yet done, its key `open` sharded as `unfinished#<0..15>` (see `dynamodb_state.py`).
- apps: one item per app, keyed by the SHA-256 of its write key (`key_hash`).
- insights: per-minute counters and sketches, funnel rows and applied-batch markers (see
  `dynamodb_insights.py` for the key shapes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

UNFINISHED_INDEX = "unfinished"
TTL_ATTRIBUTE = "expires_at"
DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class ItemLifetime:
    """Items that DynamoDB deletes `days` after their write: their `TTL_ATTRIBUTE` is set to then."""

    days: int
    now_s: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"ttl_days must be at least 1, not {self.days}")

    def expires_at(self) -> AttributeValueTypeDef:
        """The `TTL_ATTRIBUTE` value of an item written now."""
        return {"N": str(int(self.now_s()) + self.days * DAY_S)}


def batch_pk(batch_id: str) -> str:
    """The state table's partition of a batch: its record and its quarantined events."""
    return f"batch#{batch_id}"


def _keys(*names: tuple[str, str]) -> dict[str, Any]:
    roles = ("HASH", "RANGE")
    return {
        "KeySchema": [{"AttributeName": n, "KeyType": r} for (n, _), r in zip(names, roles, strict=False)],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in names],
    }


CURATED_TABLE: dict[str, Any] = {**_keys(("event_id", "S")), "BillingMode": "PAY_PER_REQUEST"}
# The curated table's stream feeds write_lake (lake_stream.py): the new image holds every lake column.
CURATED_STREAM: dict[str, Any] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
STATE_TABLE: dict[str, Any] = {
    **_keys(("pk", "S"), ("sk", "S")),
    "BillingMode": "PAY_PER_REQUEST",
    "GlobalSecondaryIndexes": [
        {
            "IndexName": UNFINISHED_INDEX,
            "KeySchema": [
                {"AttributeName": "open", "KeyType": "HASH"},
                {"AttributeName": "received_at_ms", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
}
STATE_TABLE["AttributeDefinitions"] += [
    {"AttributeName": "open", "AttributeType": "S"},
    {"AttributeName": "received_at_ms", "AttributeType": "N"},
]
INSIGHTS_TABLE: dict[str, Any] = {**_keys(("pk", "S"), ("sk", "S")), "BillingMode": "PAY_PER_REQUEST"}
APPS_TABLE: dict[str, Any] = {**_keys(("key_hash", "S")), "BillingMode": "PAY_PER_REQUEST"}


def create_tables(client: Any, *, curated: str, state: str, insights: str, apps: str | None = None) -> None:
    """Create the tables (for tests and local experiments; templates create them in AWS)."""
    specs = [(curated, {**CURATED_TABLE, "StreamSpecification": CURATED_STREAM}), (state, STATE_TABLE)]
    specs.append((insights, INSIGHTS_TABLE))
    for name, spec in [*specs, *([(apps, APPS_TABLE)] if apps else [])]:
        client.create_table(TableName=name, **spec)

"""The insights table's stream, played to the fold as the `fold_insights` function would receive it.

moto keeps no DynamoDB stream, so this finds the delta items put since the last delivery (each is
inserted once: its put is conditional) and hands them to the store's fold as one stream batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.aws.conftest import INSIGHTS_TABLE

if TYPE_CHECKING:
    from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore
    from eventpipe.adapters.aws.insights_fold import FoldResult
    from eventpipe.core.aggregate import BatchAggregate


def delta_items(client: Any, table: str = INSIGHTS_TABLE) -> list[dict[str, Any]]:
    """Every delta item in the table, oldest batch id first (the scan's order does not matter to the fold)."""
    pages = client.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="begins_with(pk, :d)",
        ExpressionAttributeValues={":d": {"S": "delta#"}},
        ConsistentRead=True,
    )
    items = [item for page in pages for item in page["Items"]]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def stream_event(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A Lambda event of DynamoDB stream records inserting `items` (binary values in base64, as Lambda sends them)."""
    import base64

    def lambda_json(value: dict[str, Any]) -> dict[str, Any]:
        ((kind, data),) = value.items()
        if kind == "B":
            return {"B": base64.b64encode(bytes(data)).decode()}
        if kind == "L":
            return {"L": [lambda_json(v) for v in data]}
        if kind == "M":
            return {"M": {k: lambda_json(v) for k, v in data.items()}}
        return {kind: data}

    return {
        "Records": [
            {
                "eventID": f"{number:032x}",
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-west-1",
                "dynamodb": {
                    "Keys": {"pk": item["pk"], "sk": item["sk"]},
                    "NewImage": {name: lambda_json(value) for name, value in item.items()},
                    "SequenceNumber": f"{number + 1:021d}",
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": f"arn:aws:dynamodb:eu-west-1:123456789012:table/{INSIGHTS_TABLE}/stream/x",
            }
            for number, item in enumerate(items)
        ]
    }


class InsightsStream:
    """Delivers each delta once, in the order of delivery calls: a stream with a Lambda behind it."""

    def __init__(self, client: Any, table: str = INSIGHTS_TABLE) -> None:
        self.client = client
        self.table = table
        self.delivered: set[tuple[str, str]] = set()

    def pending(self) -> list[dict[str, Any]]:
        return [
            item
            for item in delta_items(self.client, self.table)
            if (item["pk"]["S"], item["sk"]["S"]) not in self.delivered
        ]

    def take(self) -> list[dict[str, Any]]:
        items = self.pending()
        self.delivered.update((item["pk"]["S"], item["sk"]["S"]) for item in items)
        return items


class StreamedStore:
    """A `DynamoInsightsStore` whose deltas are folded right after each apply (the stream with no delay)."""

    def __init__(self, store: DynamoInsightsStore, client: Any, table: str = INSIGHTS_TABLE) -> None:
        self.store = store
        self.stream = InsightsStream(client, table)

    def apply(self, batch_id: str, aggregate: BatchAggregate) -> bool:
        applied = self.store.apply(batch_id, aggregate)
        self.deliver()
        return applied

    def deliver(self) -> FoldResult:
        return self.store.fold_items(self.stream.take())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

"""The curated table's stream under moto, played to `write_lake` as the event source mapping would.

moto keeps the stream (its records, sequence numbers and event ids) but its DynamoDB Streams endpoint
does not answer boto3 (requests are signed for `dynamodb` and routed to the table API), so this reads
moto's streams backend directly: DescribeStream, GetShardIterator, GetRecords. Each record is turned
into the shape Lambda hands a function (binary values in base64, the creation time in epoch seconds),
and only INSERTs pass, as the mapping's filter lets through (`{"eventName": ["INSERT"]}`).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from moto.dynamodbstreams.models import dynamodbstreams_backends

from tests.aws.conftest import CURATED_TABLE, REGION

ACCOUNT = "123456789012"


def lambda_value(value: Any) -> Any:
    """A stream record's value as Lambda's JSON event holds it."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {key: lambda_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [lambda_value(item) for item in value]
    return value


class CuratedStream:
    """Reads the curated table's stream from where it last stopped, shard by shard."""

    def __init__(self, dynamodb: Any, table: str = CURATED_TABLE) -> None:
        self.arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self.backend = dynamodbstreams_backends[ACCOUNT][REGION]
        self.iterators: dict[str, str] = {}
        for shard in self.backend.describe_stream(self.arn)["Shards"]:
            iterator = self.backend.get_shard_iterator(self.arn, shard["ShardId"], "TRIM_HORIZON", None)
            self.iterators[shard["ShardId"]] = iterator.arn

    def take(self, *, inserts_only: bool = True) -> list[dict[str, Any]]:
        """The records written since the last call, in the Lambda event's shape."""
        records: list[dict[str, Any]] = []
        for shard, iterator in self.iterators.items():
            while True:
                page = self.backend.get_records(iterator, 1000)
                got = page.get("Records", [])
                records += got
                iterator = page["NextShardIterator"]
                if not got:
                    break
            self.iterators[shard] = iterator
        shaped = [{**lambda_value(r), "eventSourceARN": self.arn} for r in records]
        return [r for r in shaped if r["eventName"] == "INSERT"] if inserts_only else shaped


def stream_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}

"""The request index (AWS micro-batching) in the state table: which group holds each queued request.

One item per group and time bucket of its requests' ids (`core/grouping.py`, `INDEX_BUCKET_MS`):
`pk = requests#<bucket>`, `sk = <group id>`, and `members`, the group's requests of that bucket as
`<request id> <first index>` lines. A group of 100 requests over a second is one item of about
3.5 KB (4 write units), where a record per request cost 2 write units each in a transaction.
`find` and `groups_of` Query a bucket (strongly consistent): a few groups' items.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.dynamodb_calls import DynamoTable, attempt
from eventpipe.core.batch_ids import queued_id_facts
from eventpipe.core.queued import IndexedRequest, index_bucket

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


INDEX_PREFIX = "requests#"


def index_pk(bucket: int) -> str:
    return f"{INDEX_PREFIX}{bucket}"


class DynamoRequestIndex(DynamoTable):
    def add(self, requests: Sequence[IndexedRequest]) -> None:
        by_bucket: dict[int, list[IndexedRequest]] = defaultdict(list)
        for request in requests:
            by_bucket[index_bucket(_received_at(request.batch_id))].append(request)
        for bucket, members in sorted(by_bucket.items()):
            item: dict[str, Any] = {
                "pk": {"S": index_pk(bucket)},
                "sk": {"S": members[0].group_id},
                "members": {"S": "\n".join(f"{m.batch_id} {m.first_index}" for m in members)},
            }
            attempt(
                self._backoff,
                f"cannot index the requests of group {members[0].group_id} in {self._table}",
                partial(self._client.put_item, TableName=self._table, Item=item),
            )

    def groups_of(self, batch_ids: Sequence[str]) -> dict[str, IndexedRequest]:
        wanted = set(batch_ids)
        found: dict[str, IndexedRequest] = {}
        for bucket in sorted({index_bucket(_received_at(batch_id)) for batch_id in wanted}):
            for entry in self._bucket(bucket):
                if entry.batch_id in wanted:
                    found.setdefault(entry.batch_id, entry)
        return found

    def find(self, batch_id: str) -> IndexedRequest | None:
        for entry in self._bucket(index_bucket(_received_at(batch_id))):
            if entry.batch_id == batch_id:
                return entry
        return None

    def _bucket(self, bucket: int) -> Iterator[IndexedRequest]:
        paging: dict[str, Any] = {}
        while True:
            page = attempt(
                self._backoff,
                f"cannot read the request index in {self._table}",
                partial(
                    self._client.query,
                    TableName=self._table,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": {"S": index_pk(bucket)}},
                    ConsistentRead=True,
                    **paging,
                ),
            )
            for item in page["Items"]:
                group_id = item["sk"]["S"]
                for line in item["members"]["S"].splitlines():
                    batch_id, _, first = line.partition(" ")
                    yield IndexedRequest(batch_id, group_id, int(first))
            if "LastEvaluatedKey" not in page:
                return
            paging = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def _received_at(batch_id: str) -> int:
    facts = queued_id_facts(batch_id)
    if facts is None:
        raise ValueError(f"{batch_id!r} is not a queued request id")
    return facts[0]

"""The quarantine in DynamoDB's state table: a batch's rejections share one item per 100 indexes.

How records map to items is in `quarantine_items`. What this adds is how an item changes:

- `add` writes a chunk that does not exist yet with one conditional PutItem (`attribute_not_exists`):
  a batch's first ProcessBatch, the common case, reads nothing. Otherwise (a retried step, a
  replay updating its records) it reads the chunk, changes it and writes it back on condition
  that its version `v` is still the one read; a retry whose records are already there writes
  nothing. A record too large to share a chunk gets its own item, and leaves its chunk.
- `update` (a replay's events rejected again) reads the batch's items and changes each record
  where it is stored, its text kept, only if it is still stored: in its chunk under the version
  condition, in its own item on condition that the item exists. A record that a concurrent replay
  released or an erasure removed is not brought back.
- `remove` (a replay releasing the events it curated, the erasure deleting a user's records)
  reads the batch's items, deletes the records kept on their own, and rewrites each chunk
  concerned under the same version condition (deletes it when nothing is left).

With `ttl_days` (the stack's `RawRetentionDays`) every item written carries `expires_at`, the state
table's TTL: a record goes that many days after its last write, as the raw batch it came from does.

So two writers of one chunk (a replay and an erasure, say) never lose each other's change: the
second one's condition fails, it reads the chunk again and applies its change to what the first
wrote. A stored item that cannot be read raises `CorruptQuarantineItemError`, naming it, and no
write replaces it: the other items of the batch and of other batches are read and written as usual.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from itertools import islice
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.dynamodb_calls import (
    DEFAULT_BACKOFF,
    DynamoTable,
    attempt,
    batch_delete,
    batch_put,
    conditional,
    paged_items,
)
from eventpipe.adapters.aws.quarantine_items import (
    REJECTION_PREFIX,
    Chunk,
    chunk_item,
    chunk_of,
    chunk_sk,
    is_chunk,
    keeps_own_item,
    merged,
    own_item,
    read_batch,
    read_chunk,
    read_own,
    rejection_sk,
)
from eventpipe.adapters.aws.tables import TTL_ATTRIBUTE, ItemLifetime, batch_pk
from eventpipe.core.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    from eventpipe.adapters.aws.retry import Backoff
    from eventpipe.core.model import Rejection

    Item = dict[str, AttributeValueTypeDef]

MAX_REWRITES = 20  # a chunk changed under us this many times in a row: give up (the caller's step retries)


class DynamoQuarantine(DynamoTable):
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        page_size: int = 1000,
        ttl_days: int | None = None,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        """`page_size` is the Scan's `Limit` in `iter_all`: items read per request, before the filter.
        `ttl_days`: each item expires that many days after its write (None: kept)."""
        super().__init__(table_name, client, backoff=backoff)
        self._page_size = page_size
        self._lifetime = None if ttl_days is None else ItemLifetime(ttl_days, now_s)

    def add(self, rejections: Sequence[Rejection]) -> None:
        for batch_id, records in _by_batch(rejections).items():
            own = [r for r in records if keeps_own_item(r)]
            batch_put(self._client, self._table, [self._expiring(own_item(r)) for r in own], self._backoff)
            apart = {r.index for r in own}
            upserts: dict[int, dict[int, Rejection]] = defaultdict(dict)
            drops: dict[int, set[int]] = defaultdict(set)
            for record in records:
                if record.index in apart:  # a chunk's copy would hide it: out of its chunk, once it is stored apart
                    drops[chunk_of(record.index)].add(record.index)
                else:
                    upserts[chunk_of(record.index)][record.index] = record
            for chunk in sorted({*upserts, *drops}):
                self._change(batch_id, chunk, upserts[chunk], drops[chunk], None)

    def update(self, rejections: Sequence[Rejection]) -> None:
        # Each record is changed where it is stored, its text kept: in its chunk under the chunk's version
        # (only if the chunk still holds it), or in its own item on condition that the item still exists.
        for batch_id, records in _by_batch(rejections).items():
            items = list(self._batch_items(batch_id))
            concerned = {chunk_sk(chunk_of(r.index)) for r in records}
            chunks = [read_chunk(item) for item in items if item["sk"]["S"] in concerned]
            held = {index for chunk in chunks for index in chunk.records}
            for chunk in chunks:
                upserts = {r.index: r for r in records if r.index in chunk.records}
                if upserts:
                    self._change(batch_id, chunk.chunk, upserts, (), chunk, present_only=True)
            apart = {item["sk"]["S"]: item for item in items if not is_chunk(item)}
            for record in records:
                stored = apart.get(rejection_sk(record.index))
                if stored is not None and record.index not in held:  # a chunk's copy is the record
                    self._replace_own(replace(record, raw=read_own(stored).raw))

    def for_batch(self, batch_id: str) -> list[Rejection]:
        chunks, own = read_batch(self._batch_items(batch_id))
        return merged(chunks, own)

    def iter_all(self, limit: int | None = None) -> Iterator[Rejection]:
        """Every rejection, by a paginated Scan: for replay and erasure, not for a hot path.

        A Scan is not time-ordered: batches come in the table's hash order, so "oldest first" holds
        per batch only (its chunks' records in index order, then the records kept apart). Records
        added while iterating may or may not be included.
        """
        items = paged_items(
            self._backoff,
            f"cannot scan the rejections in {self._table}",
            lambda paging: self._client.scan(
                TableName=self._table,
                FilterExpression="begins_with(sk, :rej)",
                ExpressionAttributeValues={":rej": {"S": REJECTION_PREFIX}},
                Limit=self._page_size,
                ConsistentRead=True,
                **paging,
            ),
        )
        # islice stops before asking for another page once `limit` records are out.
        yield from islice(_once_per_index(items), limit)

    def remove(self, keys: Sequence[tuple[str, int]]) -> None:
        by_batch: dict[str, set[int]] = defaultdict(set)
        for batch_id, index in keys:
            by_batch[batch_id].add(index)
        for batch_id, indexes in by_batch.items():
            items = list(self._batch_items(batch_id))
            # Records kept apart first: were a chunk rewritten first and this step then cut short, a
            # copy kept apart would come back as the record.
            apart = {rejection_sk(index) for index in indexes}
            gone = [_key(item) for item in items if item["sk"]["S"] in apart]
            batch_delete(self._client, self._table, gone, self._backoff)
            # Only the chunks concerned are read: an unreadable one elsewhere does not stop this.
            concerned = {chunk_sk(chunk_of(index)) for index in indexes}
            for item in items:
                if item["sk"]["S"] in concerned:
                    chunk = read_chunk(item)
                    self._change(batch_id, chunk.chunk, {}, indexes, chunk)

    def _batch_items(self, batch_id: str) -> Iterator[Item]:
        return paged_items(
            self._backoff,
            f"cannot read the rejections of batch {batch_id} from {self._table}",
            lambda paging: self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :rej)",
                ExpressionAttributeValues={":pk": {"S": batch_pk(batch_id)}, ":rej": {"S": REJECTION_PREFIX}},
                ConsistentRead=True,
                **paging,
            ),
        )

    def _change(
        self,
        batch_id: str,
        chunk: int,
        upserts: dict[int, Rejection],
        drops: Iterable[int],
        current: Chunk | None,
        *,
        present_only: bool = False,
    ) -> None:
        """Put `upserts` into a chunk and take `drops` out of it, under its version condition; with
        `present_only`, only the upserts of records the chunk holds, each keeping its stored text."""
        new = current is None and upserts and not present_only
        if new and self._write(batch_id, chunk, upserts, version=1, expected=None):
            return  # the chunk did not exist: nothing read, nothing lost
        for _ in range(MAX_REWRITES):
            if current is None:
                current = self._get(batch_id, chunk)
            changes = upserts
            if present_only:
                held = current.records
                changes = {i: replace(r, raw=held[i].raw) for i, r in upserts.items() if i in held}
            records = {**current.records, **changes}
            for index in drops:
                records.pop(index, None)
            if records == current.records:
                return  # already so (a retried step): no write
            if self._write(batch_id, chunk, records, version=current.version + 1, expected=current.version):
                return
            current = None  # another writer changed it: read it again and apply the change to that
        raise StorageError(f"quarantine item {batch_pk(batch_id)} / {chunk_sk(chunk)} kept changing: not written")

    def _replace_own(self, record: Rejection) -> None:
        """Put a record kept in its own item, if that item still exists."""
        item = self._expiring(own_item(record))
        conditional(
            self._backoff,
            f"cannot update {batch_pk(record.batch_id)} / {rejection_sk(record.index)} in {self._table}",
            lambda: self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_exists(pk)"),
        )

    def _expiring(self, item: Item) -> Item:
        if self._lifetime is not None:
            item[TTL_ATTRIBUTE] = self._lifetime.expires_at()
        return item

    def _get(self, batch_id: str, chunk: int) -> Chunk:
        answer = attempt(
            self._backoff,
            f"cannot read quarantine item {batch_pk(batch_id)} / {chunk_sk(chunk)} from {self._table}",
            lambda: self._client.get_item(TableName=self._table, Key=_chunk_key(batch_id, chunk), ConsistentRead=True),
        )
        return read_chunk(answer["Item"]) if "Item" in answer else Chunk(batch_id, chunk, {}, 0)

    def _write(
        self, batch_id: str, chunk: int, records: dict[int, Rejection], *, version: int, expected: int | None
    ) -> bool:
        """Put (or, with no records, delete) a chunk if its version is `expected` (None: if it does not exist)."""
        action = f"cannot write quarantine item {batch_pk(batch_id)} / {chunk_sk(chunk)} in {self._table}"
        if expected is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {"ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": {"N": str(expected)}}}
        if not records:
            key = _chunk_key(batch_id, chunk)
            return conditional(
                self._backoff, action, lambda: self._client.delete_item(TableName=self._table, Key=key, **condition)
            )
        item = self._expiring(chunk_item(batch_id, chunk, records.values(), version))
        return conditional(
            self._backoff, action, lambda: self._client.put_item(TableName=self._table, Item=item, **condition)
        )


def _by_batch(rejections: Iterable[Rejection]) -> dict[str, list[Rejection]]:
    """Rejections by batch; of two of one (batch, index), the last, as a sequence of upserts would leave it."""
    latest = {(r.batch_id, r.index): r for r in rejections}
    by_batch: dict[str, list[Rejection]] = defaultdict(list)
    for record in latest.values():
        by_batch[record.batch_id].append(record)
    return by_batch


def _once_per_index(items: Iterable[Item]) -> Iterator[Rejection]:
    """The records of a Scan's items, one per (batch, index): a chunk's copy before one kept apart.

    A batch's items come together in a Scan (one partition key); the records kept apart wait until
    the batch's last item has been seen, so that a chunk read after them still takes precedence.
    """
    batch: str | None = None
    seen: set[int] = set()
    apart: list[Rejection] = []
    for item in items:
        if item["pk"]["S"] != batch:
            yield from (r for r in apart if r.index not in seen)
            batch, seen, apart = item["pk"]["S"], set(), []
        if is_chunk(item):
            records = read_chunk(item).records
            seen |= records.keys()
            yield from (records[index] for index in sorted(records))
        else:
            apart.append(read_own(item))
    yield from (r for r in apart if r.index not in seen)


def _chunk_key(batch_id: str, chunk: int) -> Item:
    return {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": chunk_sk(chunk)}}


def _key(item: Item) -> Item:
    return {"pk": item["pk"], "sk": item["sk"]}

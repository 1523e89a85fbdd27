"""The insights store in the Cosmos DB `insights` container: per-minute counters and sketches, funnel rows.

Key shapes (partition key `pk`; see containers.py):

- minute item: `pk = minute:<YYYY-MM-DD>:<shard>` (UTC day of the minute, the writing batch's
  shard), `id` = the minute (epoch seconds, 12 digits); `counters` maps `events_<type>`,
  `revenue`, `rejected_<code>`, `duplicates`, `lag_<bucket>` to numbers, `users` is the
  base64 of the serialized HLL sketch.
- applied marker: `id = applied-<batch_id>-<chunk>`, in the partition of the minutes it guards.
- funnel row: `pk = funnel:<YYYY-MM-DDTHH>`, `id = <minute>-<step>-<BLAKE2b of the session id>`.

Exactly once per batch, as in DynamoDB but within Cosmos DB's rules: a transaction (transactional
batch) holds at most 100 operations of one logical partition. So a batch's minute changes are cut
by day partition into chunks of at most 99 minutes; each chunk commits in one transactional batch
with its applied marker (`create`, which fails if the chunk was applied already) and the minute
items, each replaced only if its ETag is still the one read (or created if it did not exist). A
concurrent writer of the same shard changes an ETag or creates the item first: the batch fails as a
whole, and the chunk is read again and retried with backoff. A batch writes only to its own shard
(a hash of its batch id), so such conflicts are rare. Funnel rows are idempotent upserts, written first.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import TYPE_CHECKING, Any

from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosResourceNotFoundError

from eventpipe.adapters.aws.retry import Backoff
from eventpipe.core.aggregate import FUNNEL_STEPS, merged_users, union_of
from eventpipe.core.errors import StorageError
from eventpipe.core.funnel import SESSION_LOOKBACK_S, funnel_counts
from eventpipe.core.insight_rows import InsightsRows, MinuteRow
from eventpipe_azure.cosmos_state import batch_chunks
from eventpipe_azure.errors import AZURE_ERRORS, RETRYABLE_STATUS, status_of, storage_error

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import datasketches
    from azure.cosmos import ContainerProxy

    from eventpipe.core.aggregate import BatchAggregate

SHARDS = 8  # as in DynamoDB: up to SHARDS batches update a minute without conflicting
CHUNK_MINUTES = 99  # a transactional batch holds 100 operations: the marker and 99 minute items
HELPER_ROWS_TTL_S = 32 * 86_400  # markers and funnel rows; a window reads at most 31 days
_DAY_S = 86_400
_HOUR_S = 3_600
_CONFLICT = frozenset({409, 412})  # another writer created or changed an item first
_DEFAULT_BACKOFF = Backoff()


def shard_of(batch_id: str) -> int:
    """The batch's shard: the same in every process and on every retry (unlike the salted `hash()`)."""
    return int(hashlib.sha256(batch_id.encode()).hexdigest()[:8], 16) % SHARDS


def _utc(minute: int, pattern: str) -> str:
    return datetime.fromtimestamp(minute, UTC).strftime(pattern)


def minute_pk(minute: int, shard: int) -> str:
    return f"minute:{_utc(minute, '%Y-%m-%d')}:{shard}"


def funnel_pk(minute: int) -> str:
    return f"funnel:{_utc(minute, '%Y-%m-%dT%H')}"


@dataclass(slots=True)
class _MinuteChange:
    """What one batch adds to one minute item: counters to add, and a sketch to merge (None: leave it)."""

    minute: int
    counters: dict[str, float] = field(default_factory=dict)
    users: datasketches.hll_sketch | None = None

    @property
    def id(self) -> str:
        return f"{self.minute:012d}"


def _changes(aggregate: BatchAggregate) -> list[_MinuteChange]:
    """The batch's minute changes, oldest first (the same order, hence the same chunks, on every retry)."""
    changes: dict[int, _MinuteChange] = {}
    for minute, bucket in aggregate.minutes.items():
        change = changes[minute] = _MinuteChange(minute, users=bucket.users)
        change.counters.update((f"events_{t}", n) for t, n in bucket.events.items())
        change.counters["revenue"] = bucket.revenue
        change.counters.update((f"lag_{b}", n) for b, n in bucket.lag_ms.items())
    refusals: dict[str, float] = {f"rejected_{code}": n for code, n in aggregate.rejected.items() if n}
    if aggregate.duplicates:
        refusals["duplicates"] = aggregate.duplicates
    if refusals:
        change = changes.setdefault(aggregate.batch_minute, _MinuteChange(aggregate.batch_minute))
        change.counters.update(refusals)
    return [changes[minute] for minute in sorted(changes)]


class CosmosInsightsStore:
    """`InsightsStore` on Cosmos DB, applying each batch exactly once even when retried or run concurrently."""

    def __init__(self, container: ContainerProxy, *, backoff: Backoff = _DEFAULT_BACKOFF) -> None:
        self._container = container
        self._backoff = backoff

    # --- apply ------------------------------------------------------------------------------------

    def apply(self, batch_id: str, aggregate: BatchAggregate) -> bool:
        self._put_funnel(aggregate.funnel)
        shard = shard_of(batch_id)
        chunks: list[tuple[str, list[_MinuteChange]]] = []
        for pk, day in groupby(_changes(aggregate), key=lambda change: minute_pk(change.minute, shard)):
            changes = list(day)
            chunks.extend((pk, changes[i : i + CHUNK_MINUTES]) for i in range(0, len(changes), CHUNK_MINUTES))
        # Even a batch without minutes gets chunk 0, so that its marker answers a second apply.
        chunks = chunks or [(minute_pk(aggregate.batch_minute, shard), [])]
        applied = False
        for number, (pk, chunk) in enumerate(chunks):
            applied |= self._apply_chunk(pk, f"applied-{batch_id}-{number}", chunk)
        return applied

    def _put_funnel(self, steps: set[tuple[str, int, int]]) -> None:
        rows = sorted((_funnel_item(*step) for step in steps), key=lambda item: (item["pk"], item["id"]))
        for pk, partition in groupby(rows, key=lambda item: item["pk"]):
            for chunk in batch_chunks(list(partition)):
                try:
                    self._container.execute_item_batch([("upsert", (item,)) for item in chunk], partition_key=pk)
                except AZURE_ERRORS as exc:
                    raise storage_error(exc, "cannot write funnel rows") from exc

    def _apply_chunk(self, pk: str, marker_id: str, chunk: Sequence[_MinuteChange]) -> bool:
        """Apply one chunk in one transactional batch: True when applied now, False when its marker was there."""
        for _ in self._backoff.waits():
            stored = self._read_chunk(pk, marker_id, chunk)
            if stored is None:
                return False
            marker = {"id": marker_id, "pk": pk, "kind": "applied", "ttl": HELPER_ROWS_TTL_S}
            operations: list[Any] = [("create", (marker,))]
            for change in chunk:
                item = stored.get(change.id)
                if item is None:
                    operations.append(("create", (_merged({"id": change.id, "pk": pk}, change),)))
                else:
                    operations.append(("replace", (change.id, _merged(item, change)), {"if_match_etag": item["_etag"]}))
            try:
                self._container.execute_item_batch(operations, partition_key=pk)
            except CosmosBatchOperationError as exc:
                if exc.error_index == 0 and exc.status_code == 409:
                    return False  # the marker exists: this chunk was applied by an earlier try
                if exc.status_code in _CONFLICT | RETRYABLE_STATUS:
                    continue
                raise storage_error(exc, f"cannot apply {marker_id}") from exc
            except AZURE_ERRORS as exc:
                if status_of(exc) in RETRYABLE_STATUS:
                    continue
                raise storage_error(exc, f"cannot apply {marker_id}") from exc
            return True
        raise StorageError(f"cannot apply {marker_id}: writers kept conflicting for {self._backoff.attempts} tries")

    def _read_chunk(self, pk: str, marker_id: str, chunk: Sequence[_MinuteChange]) -> dict[str, dict[str, Any]] | None:
        """The chunk's stored minute items by id; None when its marker exists already."""
        ids = [marker_id] + [change.id for change in chunk]
        query = "SELECT * FROM c WHERE ARRAY_CONTAINS(@ids, c.id)"
        try:
            items = list(
                self._container.query_items(query, parameters=[{"name": "@ids", "value": ids}], partition_key=pk)
            )
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot read insights of {pk}") from exc
        stored = {item["id"]: item for item in items}
        return None if marker_id in stored else stored

    # --- read -------------------------------------------------------------------------------------

    def read(self, since_minute: int, until_minute: int, *, funnel: bool = True) -> InsightsRows:
        if until_minute <= since_minute:
            return InsightsRows(minutes=[], funnel=[0] * len(FUNNEL_STEPS))
        last = until_minute - 1
        items: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)  # minute -> its items, one per shard
        query = "SELECT * FROM c WHERE c.kind = 'minute' AND c.minute >= @since AND c.minute < @until"
        window = [{"name": "@since", "value": since_minute}, {"name": "@until", "value": until_minute}]
        for start in _starts(since_minute, last, _DAY_S):
            for shard in range(SHARDS):
                for item in self._query(query, window, minute_pk(start, shard)):
                    items[int(item["minute"])].append(item)
        minutes = [_minute_row(minute, items[minute]) for minute in sorted(items)]
        if not funnel:
            return InsightsRows(minutes, [0] * len(FUNNEL_STEPS))
        lookback = since_minute - SESSION_LOOKBACK_S
        query = "SELECT c.minute, c.session, c.step FROM c WHERE c.minute >= @since AND c.minute < @until"
        window = [{"name": "@since", "value": lookback}, {"name": "@until", "value": until_minute}]
        steps = [
            (int(row["minute"]), str(row["session"]), int(row["step"]))
            for start in _starts(lookback, last, _HOUR_S)
            for row in self._query(query, window, funnel_pk(start))
        ]
        return InsightsRows(minutes, funnel_counts(steps, since_minute=since_minute, until_minute=until_minute))

    def _query(self, query: str, parameters: list[dict[str, Any]], pk: str) -> Iterator[dict[str, Any]]:
        try:
            yield from self._container.query_items(query, parameters=parameters, partition_key=pk)
        except CosmosResourceNotFoundError:
            return
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot read insights of {pk}") from exc


def _merged(item: dict[str, Any], change: _MinuteChange) -> dict[str, Any]:
    """The minute item with the change added: counters summed, sketches merged."""
    counters = dict(item.get("counters") or {})
    for name, amount in change.counters.items():
        counters[name] = counters.get(name, 0) + amount
    merged = {"id": item["id"], "pk": item["pk"], "kind": "minute", "minute": change.minute, "counters": counters}
    users = item.get("users")
    if change.users is not None:
        users = base64.b64encode(merged_users(change.users, base64.b64decode(users) if users else None)).decode()
    if users is not None:
        merged["users"] = users
    return merged


def _funnel_item(session_id: str, step: int, minute: int) -> dict[str, Any]:
    # The session id is hashed: an id holds at most 1,023 characters and no `/ \ ? #`.
    session = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return {
        "id": f"{minute:012d}-{step}-{session}",
        "pk": funnel_pk(minute),
        "kind": "funnel",
        "minute": minute,
        "step": step,
        "session": session,
        "ttl": HELPER_ROWS_TTL_S,
    }


def _starts(first: int, last: int, period: int) -> range:
    """The starts of the UTC days or hours (`period` seconds) that hold any of `first..last`."""
    return range(first - first % period, last + 1, period)


def _minute_row(minute: int, items: list[dict[str, Any]]) -> MinuteRow:
    """A minute's items, one per shard that wrote to it, as one row: numbers added, sketches united."""
    sums: defaultdict[str, float] = defaultdict(float)
    sketches = []
    for item in items:
        if item.get("users"):
            sketches.append(base64.b64decode(item["users"]))
        for name, value in (item.get("counters") or {}).items():
            sums[name] += value
    row = MinuteRow(minute, users=union_of(sketches))
    for name, total in sums.items():
        if name == "revenue":
            row.revenue = float(total)
        elif name == "duplicates":
            row.duplicates = int(total)
        elif name.startswith("events_"):
            row.events[name.removeprefix("events_")] = int(total)
        elif name.startswith("rejected_"):
            row.rejected[name.removeprefix("rejected_")] = int(total)
        elif name.startswith("lag_"):
            row.lag_ms[int(name.removeprefix("lag_"))] = int(total)
    return row

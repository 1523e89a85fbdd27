"""The insights store in DynamoDB: per-minute counters and sketches, funnel rows, applied-batch markers.

Key shapes (one table, `pk` and `sk` strings):

- minute item: `pk = minute#<YYYY-MM-DD>#<shard>` (UTC day of the minute, the writing batch's shard),
  `sk = <minute epoch seconds, 12 digits>`; flat number attributes `events_<type>`, `revenue`,
  `rejected_<code>`, `duplicates`, `lag_<bucket>`, so that a batch adds to them with one atomic `ADD`;
  `users` (B) is the serialized HLL sketch and `v` (N) its version, for optimistic concurrency.
- applied marker: `pk = applied#<batch_id>`, `sk = <chunk number>`.
- funnel row: `pk = funnel#<YYYY-MM-DDTHH>` (UTC hour of the minute),
  `sk = <minute, 12 digits>#<step>#<BLAKE2b of the session id>`; funnel rows and markers expire by TTL.

A minute is split over `SHARDS` items, one per shard, and a batch writes only to its own shard
(a hash of its batch id). Unsharded, every concurrent batch updated the same current-minute item:
their transactions conflicted on it and on its sketch's version, and the one item and the day's one
partition capped the rate at a few dozen batches a second. Sharded, both conflicts and the load on
each partition shrink by `SHARDS`; reading costs `SHARDS` Queries per day instead of one, and the
shards' items of a minute are added up (sketches united) into one row.

A day's minutes of one shard (1,440 items) and an hour's funnel rows share a partition, so a window
is read with one Query per partition, and the zero-padded minute makes string order time order.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.dynamodb_calls import batch_put
from eventpipe.adapters.aws.errors import AWS_ERRORS, error_code, is_throttling, storage_error
from eventpipe.adapters.aws.retry import Backoff
from eventpipe.adapters.aws.tables import TTL_ATTRIBUTE
from eventpipe.core.aggregate import FUNNEL_STEPS, merged_users, union_of
from eventpipe.core.errors import StorageError
from eventpipe.core.funnel import SESSION_LOOKBACK_S, funnel_counts
from eventpipe.core.insight_rows import InsightsRows, MinuteRow

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import datasketches

    from eventpipe.core.aggregate import BatchAggregate

# Minute items per minute: a batch writes to one of them, so up to SHARDS batches update a minute
# without conflicting, on SHARDS partitions (each with its own write throughput). More shards cost
# reads: SHARDS Queries per day of the window. 8 raises the cap eightfold, to a few hundred batches
# a second, while a 31-day window stays at 248 small Queries.
SHARDS = 8
# TransactWriteItems takes at most 100 items: the chunk's applied marker and 99 minute items.
CHUNK_MINUTES = 99
_DAY_S = 86_400
# Funnel rows and applied markers expire (DynamoDB TTL): a window reads at most 31 days plus the
# funnel's lookback, and a batch's steps are retried within minutes. Minute items are kept.
HELPER_ROWS_TTL_S = 32 * _DAY_S
_HOUR_S = 3_600
# Cancellation reasons that a fresh read and another try may clear (the marker's failed condition
# is not one: it means the chunk is applied already).
_RETRYABLE_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict", "ThrottlingError"})
_EXPRESSION_MAX = 4096  # DynamoDB's limit on an expression string, placeholders unexpanded
_DEFAULT_BACKOFF = Backoff()


def _utc(minute: int, pattern: str) -> str:
    return datetime.fromtimestamp(minute, UTC).strftime(pattern)


def shard_of(batch_id: str) -> int:
    """The batch's shard: the same in every process and on every retry (unlike the salted `hash()`)."""
    return int(hashlib.sha256(batch_id.encode()).hexdigest()[:8], 16) % SHARDS


def _minute_pk(minute: int, shard: int) -> str:
    return f"minute#{_utc(minute, '%Y-%m-%d')}#{shard}"


def _minute_key(minute: int, shard: int) -> dict[str, Any]:
    return {"pk": {"S": _minute_pk(minute, shard)}, "sk": {"S": f"{minute:012d}"}}


def _marker_key(batch_id: str, chunk: int) -> dict[str, Any]:
    return {"pk": {"S": f"applied#{batch_id}"}, "sk": {"S": str(chunk)}}


def _funnel_item(session_id: str, step: int, minute: int) -> dict[str, Any]:
    # The session id is hashed: a sort key holds 1,024 bytes, a session id may hold more, and the
    # funnel only needs to tell sessions apart.
    session = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return {
        "pk": {"S": f"funnel#{_utc(minute, '%Y-%m-%dT%H')}"},
        "sk": {"S": f"{minute:012d}#{step}#{session}"},
        TTL_ATTRIBUTE: {"N": str(minute + HELPER_ROWS_TTL_S)},
    }


def _number(value: float) -> str:
    """A float as a DynamoDB number: the shortest digits that read back as the same float, no exponent.

    `repr` gives those digits; the positional form avoids `1e-05`, which some DynamoDB emulators reject.
    """
    return format(Decimal(repr(value)), "f")


@dataclass(slots=True)
class _MinuteChange:
    """What one batch adds to one minute item: counters to ADD, and a sketch to merge (None: leave it)."""

    minute: int
    shard: int
    counters: dict[str, str] = field(default_factory=dict)  # attribute -> DynamoDB number
    users: datasketches.hll_sketch | None = None


def _changes(aggregate: BatchAggregate, shard: int) -> list[_MinuteChange]:
    """The batch's minute items, oldest first (the same order, hence the same chunks, on every retry)."""
    changes: dict[int, _MinuteChange] = {}
    for minute, bucket in aggregate.minutes.items():
        change = changes[minute] = _MinuteChange(minute, shard, users=bucket.users)
        change.counters.update((f"events_{t}", str(n)) for t, n in bucket.events.items())
        change.counters["revenue"] = _number(bucket.revenue)
        change.counters.update((f"lag_{b}", str(n)) for b, n in bucket.lag_ms.items())
    refusals = {f"rejected_{code}": str(n) for code, n in aggregate.rejected.items() if n}
    if aggregate.duplicates:
        refusals["duplicates"] = str(aggregate.duplicates)
    if refusals:
        change = changes.setdefault(aggregate.batch_minute, _MinuteChange(aggregate.batch_minute, shard))
        change.counters.update(refusals)
    return [changes[minute] for minute in sorted(changes)]


class DynamoInsightsStore:
    """`InsightsStore` on DynamoDB, applying each batch exactly once even when retried or run concurrently.

    Why it is built this way:

    - Exactly once per batch: the counters are added (`ADD`), so a repeated write would count twice.
      Each transaction therefore also puts an applied marker with `attribute_not_exists(pk)`: the
      marker and the counters commit together or not at all, and a retry finds the marker and skips.
    - Sketches cannot be merged by DynamoDB itself: a HyperLogLog union is computed here, on a
      stored sketch read just before, so the write is conditioned on the sketch's version `v`;
      a concurrent writer of the same shard changes the version, the transaction is cancelled, and the chunk is read
      again and retried with backoff.
    - A transaction holds at most 100 items: a batch spanning more minutes is applied in chunks of
      99 minute items plus that chunk's marker. A crash between chunks leaves whole chunks applied,
      and a retry skips them by their markers. `apply` is True when it applied any chunk.

    Funnel rows are plain idempotent puts, written first: a crash before the counters leaves only
    rows that the retry writes again.
    """

    def __init__(self, table_name: str, client: Any = None, *, backoff: Backoff = _DEFAULT_BACKOFF) -> None:
        self._table = table_name
        self._client = client if client is not None else make_client("dynamodb")
        self._backoff = backoff

    # --- apply ------------------------------------------------------------------------------------

    def apply(self, batch_id: str, aggregate: BatchAggregate) -> bool:
        rows = [_funnel_item(*step) for step in sorted(aggregate.funnel, key=lambda s: (s[2], s[0], s[1]))]
        batch_put(self._client, self._table, rows, self._backoff)
        changes = _changes(aggregate, shard_of(batch_id))
        # Even a batch without minutes gets chunk 0, so that its marker answers a second apply.
        chunks = [changes[start : start + CHUNK_MINUTES] for start in range(0, len(changes), CHUNK_MINUTES)] or [[]]
        applied = False
        for number, chunk in enumerate(chunks):
            applied |= self._apply_chunk(_marker_key(batch_id, number), chunk)
        return applied

    def _apply_chunk(self, marker: dict[str, Any], chunk: Sequence[_MinuteChange]) -> bool:
        """Apply one chunk in one transaction: True when applied now, False when its marker was there."""
        for _ in self._backoff.waits():
            stored = self._read_sketches(marker, chunk)
            if stored is None:
                return False
            try:
                self._client.transact_write_items(TransactItems=self._transaction(marker, chunk, stored))
            except AWS_ERRORS as exc:
                if self._was_applied(exc, marker):
                    return False
                continue
            return True
        raise StorageError(
            f"cannot update insights in {self._table}: writers kept conflicting for {self._backoff.attempts} tries"
        )

    def _was_applied(self, exc: Exception, marker: dict[str, Any]) -> bool:
        """True when the marker's condition failed; False for a conflict worth retrying; else raise."""
        reasons: list[str] = []
        if error_code(exc) == "TransactionCanceledException":
            response = getattr(exc, "response", {})
            reasons = [str(reason.get("Code", "None")) for reason in response.get("CancellationReasons", [])]
        if reasons and reasons[0] == "ConditionalCheckFailed":
            return True
        failed = [code for code in reasons if code != "None"]
        if (failed and all(code in _RETRYABLE_REASONS for code in failed)) or is_throttling(exc):
            return False
        batch = marker["pk"]["S"].removeprefix("applied#")
        raise storage_error(exc, f"cannot apply batch {batch} to {self._table}") from exc

    def _read_sketches(
        self, marker: dict[str, Any], chunk: Sequence[_MinuteChange]
    ) -> dict[int, tuple[bytes | None, int]] | None:
        """Stored `(users, v)` of the chunk's minutes that merge a sketch; None when the marker exists already."""
        keys = [marker] + [_minute_key(change.minute, change.shard) for change in chunk if change.users is not None]
        request = {
            "Keys": keys,
            "ConsistentRead": True,
            "ProjectionExpression": "#pk, #sk, #u, #v",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk", "#u": "users", "#v": "v"},
        }
        items: list[dict[str, Any]] = []
        pending: dict[str, Any] = {self._table: request}
        for _ in self._backoff.waits():
            try:
                answer = self._client.batch_get_item(RequestItems=pending)
            except AWS_ERRORS as exc:
                if not is_throttling(exc):
                    raise storage_error(exc, f"cannot read insights from {self._table}") from exc
                continue
            items.extend(answer.get("Responses", {}).get(self._table, []))
            pending = answer.get("UnprocessedKeys") or {}
            if not pending:
                break
        else:
            raise StorageError(f"cannot read insights from {self._table}: keys still unprocessed")
        stored: dict[int, tuple[bytes | None, int]] = {}
        for item in items:
            if item["pk"] == marker["pk"]:
                return None
            users = item.get("users", {}).get("B")
            stored[int(item["sk"]["S"])] = (None if users is None else bytes(users), int(item.get("v", {}).get("N", 0)))
        return stored

    def _transaction(
        self,
        marker: dict[str, Any],
        chunk: Sequence[_MinuteChange],
        stored: dict[int, tuple[bytes | None, int]],
    ) -> list[dict[str, Any]]:
        item = {**marker, TTL_ATTRIBUTE: {"N": str(int(time.time()) + HELPER_ROWS_TTL_S)}}
        put = {"TableName": self._table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        return [{"Put": put}] + [{"Update": self._update(change, stored)} for change in chunk]

    def _update(self, change: _MinuteChange, stored: dict[int, tuple[bytes | None, int]]) -> dict[str, Any]:
        """`ADD` the counters; with a sketch, `SET` the merged one if the version is still the one read."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        adds = []
        for number, (attribute, amount) in enumerate(sorted(change.counters.items())):
            token = f"{number:x}"  # short placeholders: the expression must stay within 4 KB
            names[f"#a{token}"], values[f":a{token}"] = attribute, {"N": amount}
            adds.append(f"#a{token} :a{token}")
        update: dict[str, Any] = {"TableName": self._table, "Key": _minute_key(change.minute, change.shard)}
        expression = "ADD " + ", ".join(adds)
        if change.users is not None:
            users, version = stored.get(change.minute, (None, 0))
            names.update({"#u": "users", "#v": "v"})
            values.update(
                {
                    ":u": {"B": merged_users(change.users, users)},
                    ":old": {"N": str(version)},
                    ":new": {"N": str(version + 1)},
                }
            )
            expression += " SET #u = :u, #v = :new"
            update["ConditionExpression"] = "attribute_not_exists(#v) OR #v = :old"
        if len(expression.encode()) > _EXPRESSION_MAX:
            raise StorageError(f"minute {change.minute} has too many counters for one update ({len(adds)})")
        update.update(UpdateExpression=expression, ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        return update

    # --- read -------------------------------------------------------------------------------------

    def read(self, since_minute: int, until_minute: int, *, funnel: bool = True) -> InsightsRows:
        if until_minute <= since_minute:
            return InsightsRows(minutes=[], funnel=[0] * len(FUNNEL_STEPS))
        last = until_minute - 1
        items: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)  # minute -> its items, one per shard
        for start in _starts(since_minute, last, _DAY_S):
            for shard in range(SHARDS):
                for item in self._query(_minute_pk(start, shard), f"{since_minute:012d}", f"{last:012d}"):
                    items[int(item["sk"]["S"])].append(item)
        minutes = [_minute_row(minute, items[minute]) for minute in sorted(items)]
        if not funnel:
            return InsightsRows(minutes, [0] * len(FUNNEL_STEPS))
        lookback = since_minute - SESSION_LOOKBACK_S
        # A funnel key extends its minute with "#", so the bare `until` sorts after every earlier row
        # and before the rows of its own minute: BETWEEN up to it is `minute < until`.
        steps = [
            _funnel_row(item["sk"]["S"])
            for start in _starts(lookback, last, _HOUR_S)
            for item in self._query(
                f"funnel#{_utc(start, '%Y-%m-%dT%H')}", f"{lookback:012d}", f"{until_minute:012d}", keys_only=True
            )
        ]
        return InsightsRows(minutes, funnel_counts(steps, since_minute=since_minute, until_minute=until_minute))

    def _query(self, pk: str, low: str, high: str, *, keys_only: bool = False) -> Iterator[dict[str, Any]]:
        """Every item of partition `pk` with `low <= sk <= high`, page by page (strongly consistent)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":low": {"S": low}, ":high": {"S": high}},
            "ConsistentRead": True,
        }
        if keys_only:
            request["ProjectionExpression"] = "sk"
        while True:
            try:
                page = self._client.query(**request)
            except AWS_ERRORS as exc:
                raise storage_error(exc, f"cannot read insights from {self._table}") from exc
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _starts(first: int, last: int, period: int) -> range:
    """The starts of the UTC days or hours (`period` seconds) that hold any of `first..last`."""
    return range(first - first % period, last + 1, period)


def _minute_row(minute: int, items: list[dict[str, Any]]) -> MinuteRow:
    """A minute's items, one per shard that wrote to it, as one row: numbers added, sketches united.

    The numbers are added as decimals, as DynamoDB adds within an item, so that revenue is rounded
    to a float once, whatever the shards.
    """
    sums: defaultdict[str, Decimal] = defaultdict(Decimal)
    sketches = []
    for item in items:
        for attribute, value in item.items():
            if attribute == "users":
                sketches.append(bytes(value["B"]))
            elif "N" in value:
                sums[attribute] += Decimal(value["N"])
    row = MinuteRow(minute, users=union_of(sketches))
    for attribute, total in sums.items():
        if attribute == "revenue":
            row.revenue = float(total)
        elif attribute == "duplicates":
            row.duplicates = int(total)
        elif attribute.startswith("events_"):
            row.events[attribute.removeprefix("events_")] = int(total)
        elif attribute.startswith("rejected_"):
            row.rejected[attribute.removeprefix("rejected_")] = int(total)
        elif attribute.startswith("lag_"):
            row.lag_ms[int(attribute.removeprefix("lag_"))] = int(total)
    return row


def _funnel_row(sort_key: str) -> tuple[int, str, int]:
    """`<minute>#<step>#<session>` -> `(minute, session, step)`; the session may itself hold `#`."""
    minute, step, session_id = sort_key.split("#", 2)
    return int(minute), session_id, int(step)

"""The insights store in DynamoDB: per-minute counters, per-minute sketches, dirty hours, applied markers.

Key shapes (one table, `pk` and `sk` strings; the zero-padded minute makes string order time order):

- counter item: `pk = minute#<YYYY-MM-DD>` (UTC day of the minute), `sk = <minute epoch seconds, 12
  digits>`, followed by `#<segment>` for any segment but the default one (core/segments.py: an
  app's events, bots'); flat number attributes `events_<type>`, `revenue`, `rejected_<code>`,
  `duplicates`, `lag_<bucket>`, `country_<ISO code>`, so that a batch adds to them with one atomic
  `ADD`, and `v`, the number of batches that changed the minute (the sketch cache's version,
  sketch_cache.py). A minute's segments sort together, so one Query range reads them all.
- sketch item: `pk = sketch#<YYYY-MM-DD>`, `sk` as above (segment included); `users` (B) the minute's HyperLogLog
  sketch of users, `s<step>` (B) its Theta sketch of the sessions that reached funnel step `step`
  (core/funnel.py), `v` (N) a version for optimistic concurrency.
- dirty hour: `pk = dirty`, `sk = <hour start, 12 digits>`, `v` (N) counting the batches that
  changed the hour since the export last cleared it.
- applied marker: `pk = applied#<batch_id>`, `sk = <chunk number>`.

Why this shape (the read must not grow with sessions or batches, docs/insights.md):

- A window is read (dynamodb_insights_read.py) with one Query per UTC day for the counters and one
  for the sketches, plus one for the sketches of the funnel's two-hour lookback: a 1-hour window at
  most 60 + 60 + 120 items, a 24-hour one at most 1,440 + 1,440 + 120, however many sessions or
  batches there were.
- With a `SketchCache` (the AWS functions use one), a read Queries the counter items of the window and
  the lookback and only the sketch items whose minute's `v` moved since cached (sketch_cache.py): a
  dashboard polling every 3 s reads 180 small items and the few minutes written since its last poll.
- Counters and sketches are separate items because DynamoDB bills an update by the size of the
  whole item: adding to the counters costs a write unit, not the sketches' tens of KB.
- A minute is one item of each kind, not spread over shards: shards multiply the items a read
  returns. Concurrent batches of a minute conflict more often (they are retried with backoff),
  and one sketch item takes about 1,000 write units a second: at most about 40 batches a second
  write the same minute's sketches (4,000 events/s in requests of 100 events, more with larger
  batches) before throttling, which is retried too.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.dynamodb_calls import attempt, conditional, throttled
from eventpipe.adapters.aws.dynamodb_insights_read import DAY_S, VERSION, DynamoInsightsReader, minute_segment, utc
from eventpipe.adapters.aws.errors import AWS_ERRORS, cancellation_codes, is_throttling, storage_error
from eventpipe.adapters.aws.retry import Backoff, TryAgain, retried
from eventpipe.adapters.aws.tables import TTL_ATTRIBUTE
from eventpipe.core.aggregate import hour_of, merged_users
from eventpipe.core.errors import StorageError
from eventpipe.core.funnel import merged_step
from eventpipe.core.segments import ALL_PEOPLE, DEFAULT_SEGMENT

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eventpipe.adapters.aws.sketch_cache import SketchCache
    from eventpipe.core.aggregate import BatchAggregate
    from eventpipe.core.insight_rows import InsightsRows
    from eventpipe.core.segments import InsightsView

# Applied markers expire (DynamoDB TTL): a batch's steps are retried within minutes, replays
# within days. Counter and sketch items are kept.
HELPER_ROWS_TTL_S = 32 * DAY_S
# Cancellation reasons that another try may clear (the marker's failed condition is not one: it
# means the chunk is applied already).
_RETRYABLE_REASONS = frozenset({"TransactionConflict", "ThrottlingError"})
_EXPRESSION_MAX = 4096  # DynamoDB's limit on an expression string, placeholders unexpanded
_DIRTY_PK = "dirty"
# Counter updates in one transaction, beside its marker and dirty-hour item (TransactWriteItems takes 100).
_CHANGES_PER_TRANSACTION = 90
_DEFAULT_BACKOFF = Backoff()


def _key(kind: str, minute: int, segment: str = DEFAULT_SEGMENT) -> dict[str, Any]:
    """The `minute#` (counters) or `sketch#` item of a minute and segment."""
    sort_key = f"{minute:012d}" if segment == DEFAULT_SEGMENT else f"{minute:012d}#{segment}"
    return {"pk": {"S": f"{kind}#{utc(minute, '%Y-%m-%d')}"}, "sk": {"S": sort_key}}


def _marker_key(batch_id: str, chunk: int) -> dict[str, Any]:
    return {"pk": {"S": f"applied#{batch_id}"}, "sk": {"S": str(chunk)}}


def _dirty_key(hour: int) -> dict[str, Any]:
    return {"pk": {"S": _DIRTY_PK}, "sk": {"S": f"{hour:012d}"}}


def _number(value: float) -> str:
    """A float as a DynamoDB number: the shortest digits that read back as the same float, no exponent.

    `repr` gives those digits; the positional form avoids `1e-05`, which some DynamoDB emulators reject.
    """
    return format(Decimal(repr(value)), "f")


@dataclass(slots=True)
class _MinuteChange:
    """What one batch adds to one minute: counters to ADD, sketches to merge (empty: leave them)."""

    minute: int
    segment: str = DEFAULT_SEGMENT
    counters: dict[str, str] = field(default_factory=dict)  # attribute -> DynamoDB number
    sketches: dict[str, Any] = field(default_factory=dict)  # attribute -> the batch's sketch


def _chunks(aggregate: BatchAggregate) -> list[tuple[int, list[_MinuteChange]]]:
    """The batch's changes by UTC hour, oldest first (the same chunks, in the same order, on every retry).

    A chunk is one transaction: its marker, its dirty-hour item and at most 90 counter items stay
    within TransactWriteItems' 100 (an hour of many minutes and segments takes several).
    """
    changes: dict[tuple[int, str], _MinuteChange] = {}
    for minute, segment, bucket in aggregate.buckets():
        change = changes[minute, segment] = _MinuteChange(minute, segment)
        change.counters.update((f"events_{t}", str(n)) for t, n in bucket.events.items())
        change.counters["revenue"] = _number(bucket.revenue)
        change.counters.update((f"lag_{b}", str(n)) for b, n in bucket.lag_ms.items())
        change.counters.update((f"country_{c}", str(n)) for c, n in bucket.countries.items())
        if not bucket.users.is_empty():
            change.sketches["users"] = bucket.users
        change.sketches.update((f"s{step}", sessions) for step, sessions in bucket.sessions.items())
    refusals = {f"rejected_{code}": str(n) for code, n in aggregate.rejected.items() if n}
    if aggregate.duplicates:
        refusals["duplicates"] = str(aggregate.duplicates)
    if refusals:
        key = (aggregate.batch_minute, DEFAULT_SEGMENT)
        changes.setdefault(key, _MinuteChange(aggregate.batch_minute)).counters.update(refusals)
    hours: dict[int, list[_MinuteChange]] = {}
    for key in sorted(changes):
        hours.setdefault(hour_of(key[0]), []).append(changes[key])
    return [
        (hour, chunk[start : start + _CHANGES_PER_TRANSACTION])
        for hour, chunk in sorted(hours.items())
        for start in range(0, len(chunk), _CHANGES_PER_TRANSACTION)
    ]


def _merged(attribute: str, sketch: Any, stored: bytes | None) -> bytes:
    return merged_users(sketch, stored) if attribute == "users" else merged_step(sketch, stored)


class DynamoInsightsStore:
    """`InsightsStore` on DynamoDB, applying each batch exactly once even when retried or run concurrently.

    Why it is built this way:

    - Exactly once per batch: the counters are added (`ADD`), so a repeated write would count twice.
      Each transaction therefore also puts an applied marker with `attribute_not_exists(pk)`: the
      marker, the counters and the dirty-hour mark commit together or not at all, and a retry
      finds the marker and skips.
    - Sketches are merged here (DynamoDB cannot unite them) and written before the transaction,
      each conditioned on the version read: a concurrent writer changes it, and that minute is
      read again and merged again. A union is idempotent, so a sketch merged by a try that then
      failed, or merged twice, counts nothing twice; they need no transaction (which would bill
      their tens of KB twice).
    - One transaction per UTC hour of the batch (most batches touch one): a crash between hours
      leaves whole hours applied, and a retry skips them by their markers. `apply` is True when it
      applied any.
    """

    def __init__(
        self,
        table_name: str,
        client: Any = None,
        *,
        backoff: Backoff = _DEFAULT_BACKOFF,
        sketch_cache: SketchCache | None = None,
    ) -> None:
        self._table = table_name
        self._client = client if client is not None else make_client("dynamodb")
        self._backoff = backoff
        self._reader = DynamoInsightsReader(table_name, self._client, backoff, sketch_cache)

    # --- apply ------------------------------------------------------------------------------------

    def apply(self, batch_id: str, aggregate: BatchAggregate) -> bool:
        # Even a batch without minutes gets chunk 0, so that its marker answers a second apply.
        chunks = _chunks(aggregate) or [(hour_of(aggregate.batch_minute), [])]
        applied = False
        for number, (hour, chunk) in enumerate(chunks):
            applied |= self._apply_chunk(_marker_key(batch_id, number), hour, chunk)
        return applied

    def _apply_chunk(self, marker: dict[str, Any], hour: int, chunk: Sequence[_MinuteChange]) -> bool:
        """Apply one hour's changes: True when applied now, False when its marker was there."""
        stored = self._read_sketches(marker, chunk)
        if stored is None:
            return False
        for change in chunk:
            if change.sketches:
                self._merge_sketches(change, stored.get((change.minute, change.segment)))
        transaction = self._transaction(marker, hour, chunk)

        def one_try() -> bool:
            try:
                self._client.transact_write_items(TransactItems=transaction)
            except AWS_ERRORS as exc:
                return not self._was_applied(exc, marker)
            return True

        return retried(self._backoff, f"cannot update insights in {self._table}", one_try)

    def _was_applied(self, exc: Exception, marker: dict[str, Any]) -> bool:
        """True when the marker's condition failed; `TryAgain` for a conflict worth retrying; else raise."""
        reasons = cancellation_codes(exc)
        if reasons and reasons[0] == "ConditionalCheckFailed":
            return True
        failed = [code for code in reasons if code != "None"]
        if (failed and all(code in _RETRYABLE_REASONS for code in failed)) or is_throttling(exc):
            raise TryAgain("writers kept conflicting") from exc
        batch = marker["pk"]["S"].removeprefix("applied#")
        raise storage_error(exc, f"cannot apply batch {batch} to {self._table}") from exc

    def _read_sketches(
        self, marker: dict[str, Any], chunk: Sequence[_MinuteChange]
    ) -> dict[tuple[int, str], dict[str, Any]] | None:
        """The stored sketch items of the chunk's minutes, by minute and segment; None when the marker exists."""
        keys = [marker] + [_key("sketch", change.minute, change.segment) for change in chunk if change.sketches]
        items: list[dict[str, Any]] = []
        pending: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
        action = f"cannot read insights from {self._table}"

        def one_try() -> None:
            nonlocal pending
            answer = throttled(action, lambda: self._client.batch_get_item(RequestItems=pending))
            items.extend(answer.get("Responses", {}).get(self._table, []))
            pending = answer.get("UnprocessedKeys") or {}
            if pending:
                raise TryAgain("keys still unprocessed")

        retried(self._backoff, action, one_try)
        if any(item["pk"] == marker["pk"] for item in items):
            return None
        return {minute_segment(item["sk"]["S"]): item for item in items}

    def _merge_sketches(self, change: _MinuteChange, stored: dict[str, Any] | None) -> None:
        """Write the minute's sketches merged with the stored ones, if no one wrote them since they were read."""
        key = _key("sketch", change.minute, change.segment)
        action = f"cannot write the sketches of minute {change.minute} to {self._table}"

        def one_try() -> None:
            nonlocal stored
            item: dict[str, Any] = dict(stored or key)
            for attribute, sketch in change.sketches.items():
                old = item.get(attribute, {}).get("B")
                item[attribute] = {"B": _merged(attribute, sketch, None if old is None else bytes(old))}
            version = int(item.get("v", {}).get("N", 0))
            item["v"] = {"N": str(version + 1)}
            request: dict[str, Any] = {"TableName": self._table, "Item": item}
            if stored is None:
                request["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                request["ConditionExpression"] = "v = :old"
                request["ExpressionAttributeValues"] = {":old": {"N": str(version)}}
            if not conditional(self._backoff, action, functools.partial(self._client.put_item, **request)):
                stored = self._get(key)  # another writer's sketches: merge with them
                raise TryAgain("writers kept conflicting")

        retried(self._backoff, action, one_try)

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        answer = attempt(
            self._backoff,
            f"cannot read insights from {self._table}",
            lambda: self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True),
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def _transaction(self, marker: dict[str, Any], hour: int, chunk: Sequence[_MinuteChange]) -> list[dict[str, Any]]:
        item = {**marker, TTL_ATTRIBUTE: {"N": str(int(time.time()) + HELPER_ROWS_TTL_S)}}
        put = {"TableName": self._table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        dirty = {
            "TableName": self._table,
            "Key": _dirty_key(hour),
            "UpdateExpression": "ADD v :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
        updates = [{"Update": self._update(change)} for change in chunk if change.counters]
        return [{"Put": put}, *([{"Update": dirty}] if updates else []), *updates]

    def _update(self, change: _MinuteChange) -> dict[str, Any]:
        """`ADD` the minute's counters."""
        names: dict[str, str] = {"#v": VERSION}
        values: dict[str, Any] = {":v": {"N": "1"}}
        adds = ["#v :v"]  # the minute's version: a cached sketch item read before this batch is stale
        for number, (attribute, amount) in enumerate(sorted(change.counters.items())):
            token = f"{number:x}"  # short placeholders: the expression must stay within 4 KB
            names[f"#a{token}"], values[f":a{token}"] = attribute, {"N": amount}
            adds.append(f"#a{token} :a{token}")
        expression = "ADD " + ", ".join(adds)
        if len(expression.encode()) > _EXPRESSION_MAX:
            raise StorageError(f"minute {change.minute} has too many counters for one update ({len(adds)})")
        return {
            "TableName": self._table,
            "Key": _key("minute", change.minute, change.segment),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    # --- dirty hours --------------------------------------------------------------------------------

    def dirty_hours(self) -> list[tuple[int, int]]:
        return [
            (int(item["sk"]["S"]), int(item.get("v", {}).get("N", 0)))
            for item in self._reader.query(_DIRTY_PK, "0", "9" * 12)
        ]

    def clear_dirty(self, hour: int, version: int) -> bool:
        return conditional(
            self._backoff,
            f"cannot clear dirty hour {hour} in {self._table}",
            lambda: self._client.delete_item(
                TableName=self._table,
                Key=_dirty_key(hour),
                ConditionExpression="v = :v",
                ExpressionAttributeValues={":v": {"N": str(version)}},
            ),
        )

    def read(
        self, since_minute: int, until_minute: int, *, funnel: bool = True, view: InsightsView = ALL_PEOPLE
    ) -> InsightsRows:
        return self._reader.read(since_minute, until_minute, funnel=funnel, view=view)

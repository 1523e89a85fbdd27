"""The fold: merge batches' deltas (insights_delta.py) into the minute items, each delta exactly once.

The insights table's stream invokes the `fold_insights` function with the deltas inserted during its
batching window (the event source mapping's filter passes only delta inserts). For each minute and
segment they touch, the fold writes, in this order:

1. the minute item (`sketch#<day>`, the store of record): counters added, sketches united, the ids of
   the deltas folded in (`ids`: 8 bytes each) and a version `v`, put on the condition that `v` is the
   one read. A delta whose id is in `ids` is skipped, so a stream batch delivered again (Lambda retries
   a failed batch; rarely, it delivers one twice) or a batch's second delta after its first expired
   counts nothing twice. A concurrent fold of the same minute (another shard) fails the condition, and
   the minute is read and merged again.
2. the counter item (`minute#<day>`): a copy of the counters and `v`, under 1 KB, which the dashboard's
   polls read to learn which minutes changed (sketch_cache.py). Put only if its `v` is older, so that a
   late copy never goes back.
3. the dirty hours (`dirty`, `ADD v 1`), after the minutes: a fold that fails before is retried with its
   whole batch, and marks them then (its deltas are skipped, the marks are not).

A minute item is written once per fold invocation, not once per batch: at 100 events/s about 30
batches share each write of a ~14 KB item.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import datasketches

from eventpipe.adapters.aws.dynamodb_calls import attempt, conditional
from eventpipe.adapters.aws.errors import AWS_ERRORS, is_throttling, storage_error
from eventpipe.adapters.aws.insights_delta import ID_BYTES
from eventpipe.adapters.aws.insights_keys import dirty_key, item_key, minute_segment
from eventpipe.core.aggregate import HLL_LG_K, hour_of, merged_users
from eventpipe.core.errors import StorageError
from eventpipe.core.funnel import STEP_LG_K, merged_step

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eventpipe.adapters.aws.insights_delta import Delta, MinuteChange
    from eventpipe.adapters.aws.retry import Backoff

Key = tuple[int, str]
_BATCH_GET_MAX = 100  # DynamoDB's limit on keys per BatchGetItem


@dataclass(frozen=True, slots=True)
class FoldResult:
    deltas: int  # deltas handed over
    folded: int  # (delta, minute) changes counted now; those counted before are skipped
    minutes: int  # minute items written


class InsightsFold:
    """Folds deltas into one insights table (see the module docstring)."""

    def __init__(self, table: str, client: Any, backoff: Backoff) -> None:
        self._table = table
        self._client = client
        self._backoff = backoff

    def fold(self, deltas: Sequence[Delta]) -> FoldResult:
        by_key: dict[Key, list[tuple[bytes, MinuteChange]]] = {}
        for delta in deltas:
            for change in delta.changes:
                by_key.setdefault((change.minute, change.segment), []).append((delta.id, change))
        stored = self._get_many(sorted(by_key))
        folded = written = 0
        for key in sorted(by_key):
            counted = self._fold_minute(key, by_key[key], stored.get(key))
            folded += counted
            written += counted > 0
        for hour in sorted({hour_of(minute) for minute, _ in by_key}):
            attempt(
                self._backoff,
                f"cannot mark hour {hour} dirty in {self._table}",
                lambda hour=hour: self._client.update_item(  # type: ignore[misc]
                    TableName=self._table,
                    Key=dirty_key(hour),
                    UpdateExpression="ADD v :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                ),
            )
        return FoldResult(len(deltas), folded, written)

    def _fold_minute(self, key: Key, changes: list[tuple[bytes, MinuteChange]], stored: dict[str, Any] | None) -> int:
        """Merge the changes not counted yet into the minute item, then copy its counters; how many counted."""
        action = f"cannot fold insights into minute {key[0]} of {self._table}"
        for _ in self._backoff.waits():
            item = dict(stored) if stored is not None else dict(item_key("sketch", *key))
            seen = _ids(item)
            new = []
            for delta, change in changes:
                if delta not in seen:  # a delta may hold a minute once; the same delta twice in a window too
                    seen.add(delta)
                    new.append(change)
            if not new:
                self._copy_counters(key, item)  # a retry after a crash between the two writes
                return 0
            version = int(item.get("v", {}).get("N", 0))
            _merge(item, new)
            item["ids"] = {"B": b"".join(sorted(seen))}
            item["v"] = {"N": str(version + 1)}
            request: dict[str, Any] = {"TableName": self._table, "Item": item}
            if stored is None:
                request["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                request["ConditionExpression"] = "v = :old"
                request["ExpressionAttributeValues"] = {":old": {"N": str(version)}}
            if conditional(self._backoff, action, functools.partial(self._client.put_item, **request)):
                self._copy_counters(key, item)
                return len(new)
            stored = self._get(item_key("sketch", *key))  # another fold wrote it since: merge again
        raise StorageError(f"{action}: writers kept conflicting for {self._backoff.attempts} tries")

    def _copy_counters(self, key: Key, item: dict[str, Any]) -> None:
        """The counter item: the minute item's counters and version, unless a newer copy is there."""
        copy = {name: value for name, value in item.items() if "N" in value or name in ("pk", "sk")}
        copy.update(item_key("minute", *key))
        conditional(
            self._backoff,
            f"cannot write the counters of minute {key[0]} to {self._table}",
            lambda: self._client.put_item(
                TableName=self._table,
                Item=copy,
                ConditionExpression="attribute_not_exists(v) OR v < :v",
                ExpressionAttributeValues={":v": item.get("v", {"N": "0"})},
            ),
        )

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        answer = attempt(
            self._backoff,
            f"cannot read insights from {self._table}",
            lambda: self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True),
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def _get_many(self, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
        """The stored minute items of `keys` (strongly consistent), by minute and segment."""
        found: dict[Key, dict[str, Any]] = {}
        for start in range(0, len(keys), _BATCH_GET_MAX):
            pending: dict[str, Any] = {
                self._table: {
                    "Keys": [item_key("sketch", *key) for key in keys[start : start + _BATCH_GET_MAX]],
                    "ConsistentRead": True,
                }
            }
            for _ in self._backoff.waits():
                try:
                    answer = self._client.batch_get_item(RequestItems=pending)
                except AWS_ERRORS as exc:
                    if not is_throttling(exc):
                        raise storage_error(exc, f"cannot read insights from {self._table}") from exc
                    continue
                for item in answer.get("Responses", {}).get(self._table, []):
                    found[minute_segment(item["sk"]["S"])] = item
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    break
            else:
                raise StorageError(f"cannot read insights from {self._table}: keys still unprocessed")
        return found


def _ids(item: dict[str, Any]) -> set[bytes]:
    packed = bytes(item.get("ids", {}).get("B", b""))
    return {packed[start : start + ID_BYTES] for start in range(0, len(packed), ID_BYTES)}


def _merge(item: dict[str, Any], changes: Sequence[MinuteChange]) -> None:
    """Add the changes' counters to the item's (revenue as exact decimals) and unite their sketches."""
    for change in changes:
        for name, amount in change.counters.items():
            old = item.get(name, {}).get("N")
            if name == "revenue":
                total = Decimal(old or "0") + Decimal(amount)
                item[name] = {"N": format(total, "f")}
            else:
                item[name] = {"N": str(int(old or 0) + int(amount))}
    for name in sorted({name for change in changes for name in change.sketches}):
        blobs = [change.sketches[name] for change in changes if name in change.sketches]
        old = item.get(name, {}).get("B")
        item[name] = {"B": _united(name, blobs, None if old is None else bytes(old))}


def _united(name: str, blobs: list[bytes], stored: bytes | None) -> bytes:
    """A minute's stored sketch united with the deltas' (serialized as every store keeps it)."""
    if name == "users":
        union = datasketches.hll_union(HLL_LG_K)
        for blob in blobs:
            union.update(datasketches.hll_sketch.deserialize(blob))
        return merged_users(union.get_result(datasketches.tgt_hll_type.HLL_8), stored)
    theta = datasketches.theta_union(STEP_LG_K)
    for blob in blobs:
        theta.update(datasketches.compact_theta_sketch.deserialize(blob))
    return merged_step(theta.get_result(), stored)

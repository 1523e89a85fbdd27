"""The insights store in the Cosmos DB `insights` container: per-minute counters and sketches, dirty hours.

Key shapes (partition key `pk`; see containers.py), as in DynamoDB (src/eventpipe/adapters/aws/dynamodb_insights.py):

- counter item: `pk = minute:<YYYY-MM-DD>` (UTC day of the minute), `id` = the minute (epoch
  seconds, 12 digits), followed by `@<segment>` for any segment but the default one
  (core/segments.py: an app's events, bots'; percent-encoded where it holds `/`, `\\`, `?`, `#` or
  `%`, which Cosmos DB ids may not hold), and `segment`; `counters` maps the counters of
  core/insight_counters.py (`events_<type>`, `revenue`, `rejected_<code>`, `duplicates`,
  `lag_<bucket>`, `country_<ISO code>`) to numbers. Refusals are counted in the default segment.
- sketch item: `pk = sketch:<YYYY-MM-DD>`, `id` and `segment` as above; `users` (the minute's HLL
  sketch) and `s<step>` (its Theta sketch of the sessions that reached funnel step `step`), base64.
- dirty hour: `id = dirty-<hour start>`, `hour`, `version`, in the partition of the hour's minutes.
- applied marker: `id = applied-<batch_id>-<chunk>`, in the partition of the minutes it guards.

Exactly once per batch, as in DynamoDB but within Cosmos DB's rules: a transaction (transactional
batch) holds at most 100 operations of one logical partition. So a batch's changes are cut by UTC
hour (an hour lies within one day's partition); each hour commits in one transactional batch: its
applied marker (`create`, which fails if the hour was applied already), its dirty-hour item and its
counter items, each replaced only if its ETag is still the one read (or created if it did not
exist). A concurrent writer changes an ETag or creates an item first: the batch fails as a whole,
and the hour is read again and retried with backoff. The sketches are written before, each
replaced only if its ETag is unchanged: a union is idempotent, so they need no marker.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosResourceNotFoundError

from eventpipe.adapters.aws.retry import Backoff
from eventpipe.adapters.insights_base import BaseInsightsStore, WindowRead
from eventpipe.core.aggregate import hour_of, merged_users
from eventpipe.core.errors import StorageError
from eventpipe.core.funnel import FUNNEL_STEPS, StepSketch, merged_step
from eventpipe.core.insight_counters import USERS, step_sketch_name
from eventpipe.core.insight_rows import DEFAULT_SEGMENT
from eventpipe_azure.errors import AZURE_ERRORS, RETRYABLE_STATUS, status_of, storage_error

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from azure.cosmos import ContainerProxy

    from eventpipe.core.insight_counters import MinuteChange

HELPER_ROWS_TTL_S = 32 * 86_400  # applied markers
_CHANGES_PER_BATCH = 90  # counter items of one transactional batch, besides its marker and dirty hour
_SAFE_IN_IDS = ":@_-.~!$&'()*+,;="  # what quote() leaves as it is: never / \\ ? # (nor %)
_DAY_S = 86_400
_CONFLICT = frozenset({409, 412})  # another writer created or changed an item first
_DEFAULT_BACKOFF = Backoff()


def _utc(minute: int, pattern: str) -> str:
    return datetime.fromtimestamp(minute, UTC).strftime(pattern)


def minute_pk(minute: int) -> str:
    return f"minute:{_utc(minute, '%Y-%m-%d')}"


def sketch_pk(minute: int) -> str:
    return f"sketch:{_utc(minute, '%Y-%m-%d')}"


def _id(minute: int, segment: str = DEFAULT_SEGMENT) -> str:
    """A counter or sketch item's id: its minute, and its segment unless it is the default one."""
    if segment == DEFAULT_SEGMENT:
        return f"{minute:012d}"
    return f"{minute:012d}@{quote(segment, safe=_SAFE_IN_IDS)}"


def _chunks(changes: Sequence[MinuteChange]) -> list[tuple[int, list[MinuteChange]]]:
    """The batch's changes by UTC hour, oldest first (the same chunks, in the same order, on every retry).

    A chunk is one transactional batch: its marker, its dirty-hour item and at most 90 counter items
    stay within Cosmos DB's 100 operations (an hour of many minutes and segments takes several).
    """
    hours: dict[int, list[MinuteChange]] = {}
    for change in sorted(changes, key=lambda c: (c.minute, c.segment)):
        hours.setdefault(hour_of(change.minute), []).append(change)
    return [
        (hour, chunk[start : start + _CHANGES_PER_BATCH])
        for hour, chunk in sorted(hours.items())
        for start in range(0, len(chunk), _CHANGES_PER_BATCH)
    ]


class CosmosInsightsStore(BaseInsightsStore):
    """`InsightsStore` on Cosmos DB, applying each batch exactly once even when retried or run concurrently."""

    def __init__(self, container: ContainerProxy, *, backoff: Backoff = _DEFAULT_BACKOFF) -> None:
        self._container = container
        self._backoff = backoff

    # --- apply ------------------------------------------------------------------------------------

    def _apply_changes(self, batch_id: str, batch_minute: int, changes: Sequence[MinuteChange]) -> bool:
        # Even a batch without minutes gets chunk 0, so that its marker answers a second apply.
        chunks = _chunks(changes) or [(hour_of(batch_minute), [])]
        applied = False
        for number, (hour, chunk) in enumerate(chunks):
            applied |= self._apply_chunk(hour, f"applied-{batch_id}-{number}", chunk)
        return applied

    def _apply_chunk(self, hour: int, marker_id: str, chunk: Sequence[MinuteChange]) -> bool:
        """Apply one hour in one transactional batch: True when applied now, False when its marker was there."""
        pk, dirty_id = minute_pk(hour), f"dirty-{_id(hour)}"
        if self._read_chunk(pk, [marker_id], marker_id) is None:
            return False
        for change in chunk:
            if change.sketches:
                self._merge_sketches(change)
        for _ in self._backoff.waits():
            stored = self._read_chunk(pk, [marker_id, dirty_id, *(_id(c.minute, c.segment) for c in chunk)], marker_id)
            if stored is None:
                return False
            marker = {"id": marker_id, "pk": pk, "kind": "applied", "ttl": HELPER_ROWS_TTL_S}
            dirty = stored.get(dirty_id) or {"id": dirty_id, "pk": pk, "kind": "dirty", "hour": hour, "version": 0}
            items = [({**dirty, "version": dirty["version"] + 1}, dirty_id in stored)]
            for change in chunk:
                item_id = _id(change.minute, change.segment)
                item = stored.get(item_id)
                items.append((_added(item or {"id": item_id, "pk": pk}, change), item is not None))
            operations: list[Any] = [("create", (marker,))]
            for item, exists in items:
                if exists:
                    operations.append(("replace", (item["id"], item), {"if_match_etag": item["_etag"]}))
                else:
                    operations.append(("create", (item,)))
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

    def _read_chunk(self, pk: str, ids: list[str], marker_id: str) -> dict[str, dict[str, Any]] | None:
        """The items `ids` of partition `pk` by id; None when the marker exists already."""
        query = "SELECT * FROM c WHERE ARRAY_CONTAINS(@ids, c.id)"
        try:
            items = list(
                self._container.query_items(query, parameters=[{"name": "@ids", "value": ids}], partition_key=pk)
            )
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot read insights of {pk}") from exc
        stored = {item["id"]: item for item in items}
        return None if marker_id in stored else stored

    def _merge_sketches(self, change: MinuteChange) -> None:
        """Replace the minute's sketch item by its merge with the batch's, if no one changed it since it was read."""
        pk, item_id = sketch_pk(change.minute), _id(change.minute, change.segment)
        for _ in self._backoff.waits():
            try:
                stored: dict[str, Any] | None = self._container.read_item(item_id, partition_key=pk)
            except CosmosResourceNotFoundError:
                stored = None
            except AZURE_ERRORS as exc:
                if status_of(exc) in RETRYABLE_STATUS:
                    continue
                raise storage_error(exc, f"cannot read the sketches of {item_id}") from exc
            item = {"id": item_id, "pk": pk, "kind": "sketch", "minute": change.minute, "segment": change.segment}
            item.update((name, value) for name, value in (stored or {}).items() if name in _SKETCHES)
            for name, sketch in change.sketches.items():
                old = item.get(name)
                merged = (merged_users if name == USERS else merged_step)(
                    sketch, base64.b64decode(old) if old else None
                )
                item[name] = base64.b64encode(merged).decode()
            try:
                if stored is None:
                    self._container.create_item(item)
                else:
                    self._container.replace_item(
                        item_id, item, etag=stored["_etag"], match_condition=MatchConditions.IfNotModified
                    )
            except AZURE_ERRORS as exc:
                if status_of(exc) in _CONFLICT | RETRYABLE_STATUS:
                    continue
                raise storage_error(exc, f"cannot write the sketches of {item_id}") from exc
            return
        raise StorageError(f"cannot write the sketches of {item_id}: writers kept conflicting")

    # --- dirty hours --------------------------------------------------------------------------------

    def dirty_hours(self) -> list[tuple[int, int]]:
        query = "SELECT * FROM c WHERE c.kind = 'dirty'"
        try:
            items = list(self._container.query_items(query, enable_cross_partition_query=True))
        except AZURE_ERRORS as exc:
            raise storage_error(exc, "cannot read the dirty hours") from exc
        return sorted((int(item["hour"]), int(item["version"])) for item in items)

    def clear_dirty(self, hour: int, version: int) -> bool:
        pk, item_id = minute_pk(hour), f"dirty-{_id(hour)}"
        try:
            item = self._container.read_item(item_id, partition_key=pk)
            if item["version"] != version:
                return False
            self._container.delete_item(
                item_id, partition_key=pk, etag=item["_etag"], match_condition=MatchConditions.IfNotModified
            )
        except AZURE_ERRORS as exc:
            if status_of(exc) in {404, 412}:
                return False
            raise storage_error(exc, f"cannot clear dirty hour {hour}") from exc
        return True

    # --- read -------------------------------------------------------------------------------------

    def _read_window(self, since_minute: int, until_minute: int, steps_since: int | None) -> WindowRead:
        """Every segment's items (an item written before segments is the default one's)."""
        window, last = WindowRead(), until_minute - 1
        for start in _day_starts(since_minute, last):
            for item in self._query(minute_pk(start), since_minute, until_minute):
                minute, segment = int(item["minute"]), item.get("segment", DEFAULT_SEGMENT)
                window.counters.extend((minute, segment, n, t) for n, t in (item.get("counters") or {}).items())
            for item in self._query(sketch_pk(start), since_minute, until_minute):
                users = item.get(USERS)
                segment = item.get("segment", DEFAULT_SEGMENT)
                window.users.append((int(item["minute"]), segment, base64.b64decode(users) if users else None))
                window.steps.extend(_steps_of(int(item["minute"]), item))
        if steps_since is not None:
            for start in _day_starts(steps_since, since_minute - 1):
                for item in self._query(sketch_pk(start), steps_since, since_minute):
                    window.steps.extend(_steps_of(int(item["minute"]), item))
        return window

    def _query(self, pk: str, since: int, until: int) -> Iterator[dict[str, Any]]:
        query = "SELECT * FROM c WHERE c.minute >= @since AND c.minute < @until"
        window = [{"name": "@since", "value": since}, {"name": "@until", "value": until}]
        try:
            yield from self._container.query_items(query, parameters=window, partition_key=pk)
        except CosmosResourceNotFoundError:
            return
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot read insights of {pk}") from exc


_SKETCHES = frozenset({USERS, *(step_sketch_name(step) for step in range(len(FUNNEL_STEPS)))})


def _added(item: dict[str, Any], change: MinuteChange) -> dict[str, Any]:
    """The counter item with the change added."""
    counters = dict(item.get("counters") or {})
    for name, amount in change.counters.items():
        counters[name] = counters.get(name, 0) + amount
    return {**item, "kind": "minute", "minute": change.minute, "segment": change.segment, "counters": counters}


def _day_starts(first: int, last: int) -> range:
    """The starts of the UTC days that hold any of `first..last`."""
    return range(first - first % _DAY_S, last + 1, _DAY_S)


def _steps_of(minute: int, item: dict[str, Any]) -> Iterator[StepSketch]:
    for step in range(len(FUNNEL_STEPS)):
        sketch = item.get(step_sketch_name(step))
        if sketch:
            yield StepSketch(minute, item.get("segment", DEFAULT_SEGMENT), step, base64.b64decode(sketch))

"""The ports in memory: fast, exact stand-ins for the stores in tests of the core (as httpx's MockTransport).

They pass the same contract suite as SQLite, DynamoDB and Cosmos DB (tests/contract), so a test
that uses them checks the use-case, not a fake's quirks. Nothing here is durable: `durable` and
crashes mean nothing in memory. Thread-safe where the pipeline writes from threads.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING

from eventpipe.adapters.curated_base import PerEventCuratedStore
from eventpipe.adapters.insights_base import BaseInsightsStore, WindowRead
from eventpipe.core.aggregate import hour_of, merged_users
from eventpipe.core.errors import ObjectNotFoundError
from eventpipe.core.funnel import StepSketch, merged_step
from eventpipe.core.insight_counters import USERS
from eventpipe.core.model import BatchRecord, BatchStatus

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from eventpipe.core.insight_counters import MinuteChange
    from eventpipe.core.model import Rejection


class MemoryBucket:
    """A bucket as a dict of keys; `writes` records each put and whether it asked to be durable."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.objects: dict[str, bytes] = {}
        self.writes: list[tuple[str, bool]] = []

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        self.writes.append((key, durable))
        self.objects[key] = bytes(data)

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectNotFoundError(f"{key} does not exist") from None

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def keys(self, prefix: str) -> Iterator[str]:
        return iter(sorted(key for key in self.objects if key.startswith(prefix)))


@dataclasses.dataclass(frozen=True)
class StoredEvent:
    batch_id: str
    event_type: str
    payload: bytes


class MemoryCuratedStore(PerEventCuratedStore):
    """Curated events by lower-case id; `events` is there to look at (tests count what they need)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.events: dict[str, StoredEvent] = {}
        self._lock = threading.Lock()

    def _put_one(self, batch_id: str, event_id: str, event_type: str, payload: bytes) -> bool:
        with self._lock:
            stored = self.events.setdefault(event_id, StoredEvent(batch_id, event_type, payload))
        return stored.batch_id == batch_id

    def owners(self, event_ids: Sequence[str]) -> dict[str, str]:
        found = {event_id.lower(): self.events.get(event_id.lower()) for event_id in event_ids}
        return {event_id: stored.batch_id for event_id, stored in found.items() if stored is not None}


class MemoryBatchStore:
    """Batch records by id (copies in and out, as a store's would be)."""

    def __init__(self) -> None:
        self.records: dict[str, BatchRecord] = {}

    def create(self, record: BatchRecord) -> bool:
        if record.batch_id in self.records:
            return False
        self.records[record.batch_id] = dataclasses.replace(record, status=BatchStatus.PENDING)
        return True

    def get(self, batch_id: str) -> BatchRecord | None:
        record = self.records.get(batch_id)
        return None if record is None else dataclasses.replace(record, rejected_by_code=dict(record.rejected_by_code))

    def mark_done(self, batch_id: str, curated: int, duplicates: int, rejected: dict[str, int]) -> None:
        record = self.records.get(batch_id)
        if record is None:
            return
        self.records[batch_id] = dataclasses.replace(
            record,
            status=BatchStatus.DONE,
            curated=curated,
            duplicates=duplicates,
            rejected=sum(rejected.values()),
            rejected_by_code=dict(rejected),
            error=None,
        )

    def mark_failed(self, batch_id: str, error: str) -> None:
        record = self.records.get(batch_id)
        if record is not None and record.status is not BatchStatus.DONE:
            self.records[batch_id] = dataclasses.replace(record, status=BatchStatus.FAILED, error=error)

    def unfinished(self) -> list[BatchRecord]:
        waiting = (BatchStatus.PENDING, BatchStatus.FAILED)
        found = [record for record in self.records.values() if record.status in waiting]
        return sorted(found, key=lambda record: record.received_at_ms)


class MemoryQuarantine:
    """Rejections by `(batch_id, index)`, in the order they were first added."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, int], Rejection] = {}

    def add(self, rejections: Sequence[Rejection]) -> None:
        for rejection in rejections:
            self.records[(rejection.batch_id, rejection.index)] = rejection

    def update(self, rejections: Sequence[Rejection]) -> None:
        for rejection in rejections:
            stored = self.records.get((rejection.batch_id, rejection.index))
            if stored is not None:  # the text stays as stored
                self.records[(rejection.batch_id, rejection.index)] = dataclasses.replace(rejection, raw=stored.raw)

    def for_batch(self, batch_id: str) -> list[Rejection]:
        return sorted((r for r in self.records.values() if r.batch_id == batch_id), key=lambda r: r.index)

    def iter_all(self, limit: int | None = None) -> Iterator[Rejection]:
        """Oldest first; records added while iterating are not included."""
        return iter(list(self.records.values())[:limit])

    def remove(self, keys: Sequence[tuple[str, int]]) -> None:
        for key in keys:
            self.records.pop(key, None)


class MemoryInsightsStore(BaseInsightsStore):
    """Counter totals and serialized sketches by (minute, segment), as a database would hold them."""

    def __init__(self) -> None:
        self.counters: dict[tuple[int, str], dict[str, int | float]] = {}
        self.sketches: dict[tuple[int, str], dict[str, bytes]] = {}
        self.applied: set[str] = set()
        self.dirty: dict[int, int] = {}
        self._lock = threading.Lock()

    def _apply_changes(self, batch_id: str, batch_minute: int, changes: Sequence[MinuteChange]) -> bool:
        with self._lock:
            if batch_id in self.applied:
                return False
            self.applied.add(batch_id)
            for change in changes:
                key = (change.minute, change.segment)
                totals = self.counters.setdefault(key, {})
                for name, amount in change.counters.items():
                    totals[name] = totals.get(name, 0) + amount
                held = self.sketches.setdefault(key, {})
                for name, sketch in change.sketches.items():
                    merge = merged_users if name == USERS else merged_step
                    held[name] = merge(sketch, held.get(name))
            for hour in {hour_of(change.minute) for change in changes}:
                self.dirty[hour] = self.dirty.get(hour, 0) + 1
            return True

    def _read_window(self, since_minute: int, until_minute: int, steps_since: int | None) -> WindowRead:
        window = WindowRead()
        with self._lock:
            for (minute, segment), totals in self.counters.items():
                if since_minute <= minute < until_minute:
                    window.counters.extend((minute, segment, name, total) for name, total in totals.items())
            for (minute, segment), held in self.sketches.items():
                if since_minute <= minute < until_minute and USERS in held:
                    window.users.append((minute, segment, held[USERS]))
                if steps_since is not None and steps_since <= minute < until_minute:
                    window.steps.extend(
                        StepSketch(minute, segment, int(name[1:]), blob) for name, blob in held.items() if name != USERS
                    )
        return window

    def dirty_hours(self) -> list[tuple[int, int]]:
        with self._lock:
            return sorted(self.dirty.items())

    def clear_dirty(self, hour: int, version: int) -> bool:
        with self._lock:
            if self.dirty.get(hour) != version:
                return False
            del self.dirty[hour]
            return True

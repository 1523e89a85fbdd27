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
from eventpipe.core.errors import ObjectNotFoundError
from eventpipe.core.model import BatchRecord, BatchStatus

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

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

    def for_batch(self, batch_id: str) -> list[Rejection]:
        return sorted((r for r in self.records.values() if r.batch_id == batch_id), key=lambda r: r.index)

    def iter_all(self, limit: int | None = None) -> Iterator[Rejection]:
        """Oldest first; records added while iterating are not included."""
        return iter(list(self.records.values())[:limit])

    def remove(self, keys: Sequence[tuple[str, int]]) -> None:
        for key in keys:
            self.records.pop(key, None)

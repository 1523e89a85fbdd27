"""The flow of `CuratedStore.put_new`, once for every backend; a backend implements how it stores.

As in Powertools' idempotency persistence layer (a `BasePersistenceLayer` owns the flow, each
backend a few primitives): `BaseCuratedStore.put_new` picks the position that counts for each event
id (the first; ids are UUIDs, whose upper- and lower-case spellings are one event) and answers one
flag per event; a backend stores those first positions (`_put_firsts`). `PerEventCuratedStore` is
the backend shape of DynamoDB, Cosmos DB and the in-memory store: one conditional write per event
(`_put_one`), run on a thread pool since each is a round trip.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

CuratedRow = tuple[str, str, bytes]  # event_id, event_type, payload


def first_positions(events: Sequence[CuratedRow]) -> list[int]:
    """The position of each event id's first occurrence, in order (ids compared in lower case)."""
    first: dict[str, int] = {}
    for position, (event_id, _, _) in enumerate(events):
        first.setdefault(event_id.lower(), position)
    return list(first.values())


class BaseCuratedStore(ABC):
    def put_new(self, batch_id: str, events: Sequence[CuratedRow], *, staged: bool = False) -> list[bool]:
        """Store `(event_id, event_type, payload)` rows unless the id is stored already; True where new.

        The same id twice in one batch is new once, at its first position; an event stored earlier by
        the same `batch_id` counts as new again (a retried step answers the same). `staged`: the
        caller's `stage(batch_id, events)` just wrote what can be written first (said by the caller,
        not remembered by the store: a `stage` whose `put_new` never came leaves nothing behind).
        """
        positions = first_positions(events)
        flags = [False] * len(events)
        firsts = self._put_firsts(batch_id, events, positions, staged=staged)
        for position, is_new in zip(positions, firsts, strict=True):
            flags[position] = is_new
        return flags

    def stage(self, batch_id: str, events: Sequence[CuratedRow]) -> None:  # noqa: B027 (a no-op by default)
        """Nothing to write ahead by default: `put_new` writes everything (one write per event, no lock held)."""

    @abstractmethod
    def _put_firsts(
        self, batch_id: str, events: Sequence[CuratedRow], positions: Sequence[int], *, staged: bool
    ) -> list[bool]:
        """Store `events[p]` for each of `positions` (ids distinct) unless another batch stored its id;
        a flag per position: True when stored now or by `batch_id` before. `staged`: `stage` wrote its part."""


class PerEventCuratedStore(BaseCuratedStore):
    """A store that writes each event on its own, with a condition that makes the answer exact when
    two batches carry the same event at once. `max_workers=1` writes inline, in order (for stubs)."""

    def __init__(self, *, max_workers: int = 8) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self._max_workers = max_workers

    def _put_firsts(
        self, batch_id: str, events: Sequence[CuratedRow], positions: Sequence[int], *, staged: bool
    ) -> list[bool]:
        def put(position: int) -> bool:
            event_id, event_type, payload = events[position]
            return self._put_one(batch_id, event_id.lower(), event_type, payload)

        if self._max_workers == 1 or len(positions) <= 1:
            return [put(position) for position in positions]
        pool = ThreadPoolExecutor(max_workers=min(self._max_workers, len(positions)))
        try:
            return list(pool.map(put, positions))
        finally:
            # After a failure, skip the puts not yet started: the whole step is retried anyway.
            pool.shutdown(wait=True, cancel_futures=True)

    @abstractmethod
    def _put_one(self, batch_id: str, event_id: str, event_type: str, payload: bytes) -> bool:
        """Store one event under its lower-case id; True when stored (now or by this batch before),
        False when another batch stored it. Raises `StorageError` when it cannot tell."""

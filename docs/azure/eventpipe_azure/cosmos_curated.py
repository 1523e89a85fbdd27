"""Curated events in the Cosmos DB `curated` container: one item per event, `id` = its event id in lower case.

Each event is written by its own `create`: Cosmos DB refuses a second item with the same id (409),
so when two batches carry the same event at the same time exactly one create succeeds. On a 409
the stored item's `batch_id` tells the two cases apart: another batch's event is a duplicate; the
same batch's (a retried step, or an SDK retry of a create that did land) counts as new again, as
the `CuratedStore` port asks. One create per event is one round trip per event, so the creates
run on a thread pool (SDK clients are thread-safe).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from azure.cosmos.exceptions import CosmosResourceExistsError, CosmosResourceNotFoundError

from eventpipe.core.errors import StorageError
from eventpipe_azure.errors import AZURE_ERRORS, storage_error

if TYPE_CHECKING:
    from collections.abc import Sequence

    from azure.cosmos import ContainerProxy


class CosmosCuratedStore:
    def __init__(self, container: ContainerProxy, *, max_workers: int = 8) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self._container = container
        self._max_workers = max_workers

    def put_new(self, batch_id: str, events: Sequence[tuple[str, str, bytes]]) -> list[bool]:
        # The same id twice in one batch is new once, at its first position (as in the other stores).
        first: dict[str, int] = {}
        for position, (event_id, _, _) in enumerate(events):
            first.setdefault(event_id.lower(), position)
        positions = list(first.values())

        def put(position: int) -> bool:
            event_id, event_type, payload = events[position]
            return self._put(batch_id, event_id.lower(), event_type, payload)

        if self._max_workers == 1 or len(positions) <= 1:
            results = [put(position) for position in positions]
        else:
            pool = ThreadPoolExecutor(max_workers=min(self._max_workers, len(positions)))
            try:
                results = list(pool.map(put, positions))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # after a failure the whole step is retried
        flags = [False] * len(events)
        for position, is_new in zip(positions, results, strict=True):
            flags[position] = is_new
        return flags

    def _put(self, batch_id: str, event_id: str, event_type: str, payload: bytes) -> bool:
        """True when stored (now or by this batch before); False when another batch stored it."""
        item = {"id": event_id, "batch_id": batch_id, "event_type": event_type, "payload": payload.decode("utf-8")}
        try:
            self._container.create_item(item)
            return True
        except CosmosResourceExistsError:
            pass
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot store event {event_id}") from exc
        try:
            stored = self._container.read_item(event_id, partition_key=event_id)
        except CosmosResourceNotFoundError as exc:  # curated events are never deleted
            raise StorageError(f"event {event_id} exists and does not: retry the step") from exc
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot read event {event_id}") from exc
        return bool(stored.get("batch_id") == batch_id)

    def count(self) -> int:
        """Every stored event, by a cross-partition query: for tests and small containers."""
        try:
            return sum(int(n) for n in self._query("SELECT VALUE COUNT(1) FROM c"))
        except AZURE_ERRORS as exc:
            raise storage_error(exc, "cannot count the curated events") from exc

    def count_by_type(self) -> dict[str, int]:
        """Stored events per type, by a cross-partition query: for tests and small containers."""
        query = "SELECT c.event_type, COUNT(1) AS n FROM c GROUP BY c.event_type"
        counts: dict[str, int] = {}
        try:
            for row in self._query(query):
                counts[row["event_type"]] = counts.get(row["event_type"], 0) + int(row["n"])
        except AZURE_ERRORS as exc:
            raise storage_error(exc, "cannot count the curated events") from exc
        return counts

    def _query(self, query: str) -> list[Any]:
        return list(self._container.query_items(query, enable_cross_partition_query=True))

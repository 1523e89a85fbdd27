"""Curated events in the Cosmos DB `curated` container: one item per event, `id` = its event id in lower case.

Each event is written by its own `create`: Cosmos DB refuses a second item with the same id (409),
so when two batches carry the same event at the same time exactly one create succeeds. On a 409
the stored item's `batch_id` tells the two cases apart: another batch's event is a duplicate; the
same batch's (a retried step, or an SDK retry of a create that did land) counts as new again, as
the `CuratedStore` port asks. One create per event is one round trip per event, so the creates
run on a thread pool (SDK clients are thread-safe).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from azure.cosmos.exceptions import CosmosResourceExistsError, CosmosResourceNotFoundError

from eventpipe.adapters.curated_base import PerEventCuratedStore
from eventpipe.core.errors import StorageError
from eventpipe_azure.errors import AZURE_ERRORS, storage_error

if TYPE_CHECKING:
    from collections.abc import Sequence

    from azure.cosmos import ContainerProxy


_IDS_PER_QUERY = 100  # a query's parameter stays small (Cosmos DB limits a query to 256 KB)


class CosmosCuratedStore(PerEventCuratedStore):
    def __init__(self, container: ContainerProxy, *, max_workers: int = 8) -> None:
        super().__init__(max_workers=max_workers)
        self._container = container

    def _put_one(self, batch_id: str, event_id: str, event_type: str, payload: bytes) -> bool:
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

    def owners(self, event_ids: Sequence[str]) -> dict[str, str]:
        """The batch that stored each id, by lower-case id: one cross-partition query per 100 ids."""
        ids = sorted({event_id.lower() for event_id in event_ids})
        found: dict[str, str] = {}
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            try:
                rows = self._container.query_items(
                    "SELECT c.id, c.batch_id FROM c WHERE ARRAY_CONTAINS(@ids, c.id)",
                    parameters=[{"name": "@ids", "value": chunk}],
                    enable_cross_partition_query=True,
                )
                found.update((row["id"], row["batch_id"]) for row in rows)
            except AZURE_ERRORS as exc:
                raise storage_error(exc, "cannot read the curated events' batches") from exc
        return found

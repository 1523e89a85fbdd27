"""Batch records and quarantined events in the Cosmos DB `state` container (see containers.py).

A batch's record and its rejections share the batch's logical partition, so one single-partition
query returns a batch's rejections in index order. The SDK retries throttling (429) by itself;
what it gives up on, and every other failure, becomes `StorageError` here.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from itertools import islice
from typing import TYPE_CHECKING, Any

import orjson
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from eventpipe.core.model import BatchRecord, BatchStatus, Reason, Rejection
from eventpipe_azure.errors import AZURE_ERRORS, storage_error

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from azure.cosmos import ContainerProxy

log = logging.getLogger(__name__)
RECORD_ID = "batch"
OPEN = "1"
BATCH_MAX_OPERATIONS = 100  # Cosmos DB's limits per transactional batch: 100 operations, 2 MB
BATCH_MAX_BYTES = 1_500_000  # below the 2 MB, leaving room for the request's own framing


def batch_pk(batch_id: str) -> str:
    return f"batch:{batch_id}"


def rejection_id(index: int) -> str:
    return f"rej-{index:010d}"  # zero-padded, so the id orders by index


class CosmosBatchStore:
    """`BatchStore` on the state container."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    def create(self, record: BatchRecord) -> bool:
        try:
            self._container.create_item(_record_item(record))
        except CosmosResourceExistsError:
            return False
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot record batch {record.batch_id}") from exc
        return True

    def get(self, batch_id: str) -> BatchRecord | None:
        try:
            item = self._container.read_item(RECORD_ID, partition_key=batch_pk(batch_id))
        except CosmosResourceNotFoundError:
            return None
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot read batch {batch_id}") from exc
        return _record(item)

    def mark_done(self, batch_id: str, curated: int, duplicates: int, rejected: dict[str, int]) -> None:
        self._patch(
            batch_id,
            {
                "status": str(BatchStatus.DONE),
                "curated": curated,
                "duplicates": duplicates,
                "rejected": sum(rejected.values()),
                "rejected_by_code": rejected,
                "error": None,
                "open": None,  # out of the unfinished query
            },
        )

    def mark_failed(self, batch_id: str, error: str) -> None:
        # A batch that is done stays done: a late failure of a repeated execution changes nothing.
        self._patch(
            batch_id, {"status": str(BatchStatus.FAILED), "error": error}, only_if="FROM c WHERE c.status != 'done'"
        )

    def _patch(self, batch_id: str, fields: dict[str, Any], *, only_if: str | None = None) -> None:
        operations = [{"op": "set", "path": f"/{name}", "value": value} for name, value in fields.items()]
        try:
            self._container.patch_item(RECORD_ID, batch_pk(batch_id), operations, filter_predicate=only_if)
        except CosmosAccessConditionFailedError:
            return  # the predicate did not hold
        except CosmosResourceNotFoundError:
            log.warning("batch %s has no record to update", batch_id)
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot update batch {batch_id}") from exc

    def unfinished(self) -> list[BatchRecord]:
        query = "SELECT * FROM c WHERE c.kind = 'batch' AND c.open = @open ORDER BY c.received_at_ms"
        try:
            items = self._container.query_items(
                query, parameters=[{"name": "@open", "value": OPEN}], enable_cross_partition_query=True
            )
            return [_record(item) for item in items]
        except AZURE_ERRORS as exc:
            raise storage_error(exc, "cannot query the unfinished batches") from exc


class CosmosQuarantine:
    """`Quarantine` on the state container: one item per `(batch_id, index)`, in the batch's partition."""

    def __init__(self, container: ContainerProxy) -> None:
        self._container = container

    def add(self, rejections: Sequence[Rejection]) -> None:
        # Upserts, so adding a record again replaces it; one transactional batch per partition and 100.
        by_batch: defaultdict[str, list[Rejection]] = defaultdict(list)
        for rejection in rejections:
            by_batch[rejection.batch_id].append(rejection)
        for batch_id, records in by_batch.items():
            unique = {r.index: r for r in records}  # one batch may not name an item twice
            for chunk in batch_chunks([_rejection_item(r) for r in unique.values()]):
                operations = [("upsert", (item,)) for item in chunk]
                try:
                    self._container.execute_item_batch(operations, partition_key=batch_pk(batch_id))
                except AZURE_ERRORS as exc:
                    raise storage_error(exc, f"cannot quarantine events of batch {batch_id}") from exc

    def update(self, rejections: Sequence[Rejection]) -> None:
        # A patch of a missing item fails (404) and writes nothing: a record released or erased stays gone.
        for rejection in {(r.batch_id, r.index): r for r in rejections}.values():
            item = _rejection_item(rejection)
            changes = [
                {"op": "set", "path": f"/{name}", "value": item[name]} for name in ("stage", "reasons", "event_id")
            ]
            try:
                self._container.patch_item(
                    item["id"], partition_key=item["pk"], patch_operations=changes, filter_predicate=None
                )
            except CosmosResourceNotFoundError:
                continue
            except AZURE_ERRORS as exc:
                raise storage_error(exc, f"cannot update rejection {rejection.batch_id}/{rejection.index}") from exc

    def for_batch(self, batch_id: str) -> list[Rejection]:
        query = "SELECT * FROM c WHERE c.kind = 'rejection' ORDER BY c.id"
        try:
            items = self._container.query_items(query, partition_key=batch_pk(batch_id))
            return [_rejection(item) for item in items]
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot read the rejections of batch {batch_id}") from exc

    def iter_all(self, limit: int | None = None) -> Iterator[Rejection]:
        """Every rejection by a cross-partition query, oldest write first (`_ts`, to the second): for replay."""
        query = "SELECT * FROM c WHERE c.kind = 'rejection' ORDER BY c._ts"
        try:
            items = self._container.query_items(query, enable_cross_partition_query=True)
            yield from (_rejection(item) for item in islice(items, limit))
        except AZURE_ERRORS as exc:
            raise storage_error(exc, "cannot read the quarantine") from exc

    def remove(self, keys: Sequence[tuple[str, int]]) -> None:
        for batch_id, index in dict.fromkeys(keys):
            try:
                self._container.delete_item(rejection_id(index), partition_key=batch_pk(batch_id))
            except CosmosResourceNotFoundError:
                continue  # removed by an earlier try
            except AZURE_ERRORS as exc:
                raise storage_error(exc, f"cannot release rejection {batch_id}/{index}") from exc


def batch_chunks(items: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Items cut into runs that fit one transactional batch (count and size), in order."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for item in items:
        item_size = len(orjson.dumps(item))
        if chunk and (len(chunk) == BATCH_MAX_OPERATIONS or size + item_size > BATCH_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


def _record_item(record: BatchRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": RECORD_ID,
        "pk": batch_pk(record.batch_id),
        "kind": "batch",
        "batch_id": record.batch_id,
        "raw_key": record.raw_key,
        "source": record.source,
        "received_at_ms": record.received_at_ms,
        "received": record.received,
        "status": str(record.status),
        "curated": record.curated,
        "duplicates": record.duplicates,
        "rejected": record.rejected,
        "rejected_by_code": dict(record.rejected_by_code),
        "error": record.error,
    }
    if record.status is not BatchStatus.DONE:
        item["open"] = OPEN
    return item


def _record(item: dict[str, Any]) -> BatchRecord:
    return BatchRecord(
        batch_id=item["batch_id"],
        raw_key=item["raw_key"],
        source=item["source"],
        received_at_ms=int(item["received_at_ms"]),
        received=int(item["received"]),
        status=BatchStatus(item["status"]),
        curated=int(item["curated"]),
        duplicates=int(item["duplicates"]),
        rejected=int(item["rejected"]),
        rejected_by_code={str(code): int(n) for code, n in (item.get("rejected_by_code") or {}).items()},
        error=item.get("error"),
    )


def _rejection_item(rejection: Rejection) -> dict[str, Any]:
    return {
        "id": rejection_id(rejection.index),
        "pk": batch_pk(rejection.batch_id),
        "kind": "rejection",
        "batch_id": rejection.batch_id,
        "index": rejection.index,
        "stage": rejection.stage,
        "reasons": [reason.as_dict() for reason in rejection.reasons],
        "raw": rejection.raw,
        "event_id": rejection.event_id,
    }


def _rejection(item: dict[str, Any]) -> Rejection:
    return Rejection(
        batch_id=item["batch_id"],
        index=int(item["index"]),
        stage=item["stage"],
        reasons=tuple(Reason(**reason) for reason in item["reasons"]),
        raw=item["raw"],
        event_id=item.get("event_id"),
    )

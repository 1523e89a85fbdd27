"""The `Quarantine` port's contract (core/ports.py), on every backend."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from eventpipe.core.model import BatchRecord, Reason, Rejection

if TYPE_CHECKING:
    from tests.contract.conftest import Stores

REASONS = (
    Reason("schema_violation", "$.properties.path", "'path' is a required property"),
    Reason("envelope_invalid", "$.occurred_at", "not a date-time"),
)


def rejection(batch_id: str, index: int, *, raw: str = "{}", event_id: str | None = None) -> Rejection:
    return Rejection(batch_id, index, "validate", REASONS, raw, event_id)


def keys(stores: Stores, limit: int | None = None) -> set[tuple[str, int]]:
    return {(r.batch_id, r.index) for r in stores.quarantine.iter_all(limit)}


def test_a_rejection_round_trips_with_every_field(stores: Stores) -> None:
    kept = [rejection("b1", 3, raw='{"a": "é"}', event_id=str(uuid.UUID(int=1))), rejection("b1", 4)]
    stores.quarantine.add(kept)
    assert stores.quarantine.for_batch("b1") == kept


def test_adding_the_same_batch_and_index_again_replaces_its_reasons(stores: Stores) -> None:
    # GIVEN a rejection stored once
    stores.quarantine.add([rejection("b1", 1)])
    # WHEN the same (batch, index) is added again with other reasons, beside new records
    other = (Reason("enrichment_failed", "$", "geo: no database"),)
    stores.quarantine.add([Rejection("b1", 1, "enrich", other, "{}", None), rejection("b1", 2), rejection("b2", 1)])
    # THEN there is one record per (batch, index), with the latest reasons
    assert [(r.index, r.stage, r.reasons) for r in stores.quarantine.for_batch("b1")] == [
        (1, "enrich", other),
        (2, "validate", REASONS),
    ]
    assert keys(stores) == {("b1", 1), ("b1", 2), ("b2", 1)}


def test_for_batch_orders_by_index_and_ignores_other_batches(stores: Stores) -> None:
    # GIVEN rejections of two batches, indexes of several digits, and the batch record (in the same
    # partition where the backend keeps both in one table)
    stores.batches.create(BatchRecord("b1", "raw/b1", "test", 0, 5))
    stores.quarantine.add([rejection("b1", 10), rejection("b2", 0), rejection("b1", 2), rejection("b1", 1_000_000)])
    stores.quarantine.add([rejection("b1", 7)])
    assert [r.index for r in stores.quarantine.for_batch("b1")] == [2, 7, 10, 1_000_000]
    assert stores.quarantine.for_batch("unknown") == []


def test_add_and_remove_many_records(stores: Stores) -> None:
    # GIVEN 60 rejections (more than one DynamoDB BatchWriteItem or Cosmos DB transactional batch)
    stores.quarantine.add([rejection("b1", n) for n in range(60)])
    assert [r.index for r in stores.quarantine.for_batch("b1")] == list(range(60))
    # WHEN 55 of them are removed THEN 5 are left
    stores.quarantine.remove([("b1", n) for n in range(5, 60)])
    assert [r.index for r in stores.quarantine.for_batch("b1")] == list(range(5))


def test_remove_deletes_only_the_given_records(stores: Stores) -> None:
    stores.quarantine.add([rejection("b1", 0), rejection("b1", 1), rejection("b2", 0)])
    # WHEN records are removed, one named twice and one unknown, and then none
    stores.quarantine.remove([("b1", 0), ("b2", 0), ("b9", 9), ("b1", 0)])
    stores.quarantine.remove([])
    # THEN only the others are left
    assert keys(stores) == {("b1", 1)}


def test_iter_all_gives_every_record_once_and_a_limit_is_exact(stores: Stores) -> None:
    # GIVEN rejections of three batches, and their batch records
    for batch_id in ("z", "a", "m"):
        stores.batches.create(BatchRecord(batch_id, f"raw/{batch_id}", "test", 0, 2))
    stores.quarantine.add([rejection("z", 5), rejection("a", 9), rejection("a", 1), rejection("m", 0)])
    assert keys(stores) == {("z", 5), ("a", 9), ("a", 1), ("m", 0)}
    assert len(list(stores.quarantine.iter_all())) == 4
    assert len(list(stores.quarantine.iter_all(limit=2))) == 2
    assert list(stores.quarantine.iter_all(limit=0)) == []
    assert len(list(stores.quarantine.iter_all(limit=100))) == 4


def test_update_replaces_the_records_still_stored_and_adds_none(stores: Stores) -> None:
    # GIVEN two records of a batch, one of them released since (by another replay, or erased)
    stores.quarantine.add([rejection("b1", 1, raw='{"a": 1}'), rejection("b1", 2)])
    stores.quarantine.remove([("b1", 2)])
    # WHEN a replay rejects all three events again, with new reasons (its text as it replayed it)
    other = (Reason("enrichment_failed", "$", "geo: no database"),)
    stores.quarantine.update(
        [Rejection("b1", n, "enrich", other, '{"a": 1} ', None) for n in (1, 2)]
        + [Rejection("b9", 0, "enrich", other, "{}")]
    )
    # THEN the stored record has the new reasons and keeps its text, and none is brought back or added
    assert [(r.index, r.stage, r.reasons, r.raw) for r in stores.quarantine.for_batch("b1")] == [
        (1, "enrich", other, '{"a": 1}')
    ]
    assert keys(stores) == {("b1", 1)}

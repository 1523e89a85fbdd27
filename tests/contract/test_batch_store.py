"""The `BatchStore` port's contract (core/ports.py), on every backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventpipe.core.model import BatchRecord, BatchStatus

if TYPE_CHECKING:
    from tests.contract.conftest import Stores

M_MS = 1_795_845_600_000  # 2026-11-28T06:00:00Z


def pending(batch_id: str, received_at_ms: int = M_MS, received: int = 10) -> BatchRecord:
    return BatchRecord(batch_id, f"raw/{batch_id}.ndjson", "test", received_at_ms, received)


def test_create_then_get_returns_a_pending_record(stores: Stores) -> None:
    assert stores.batches.create(pending("b1")) is True
    assert stores.batches.get("b1") == BatchRecord("b1", "raw/b1.ndjson", "test", M_MS, 10, BatchStatus.PENDING)
    assert stores.batches.get("unknown") is None


def test_a_second_create_returns_false_and_changes_nothing(stores: Stores) -> None:
    # GIVEN a batch that was created and marked done
    stores.batches.create(pending("b1"))
    stores.batches.mark_done("b1", 7, 1, {"schema_violation": 2})
    before = stores.batches.get("b1")
    # WHEN it is created again with other values
    # THEN create says no and the record is unchanged
    assert stores.batches.create(BatchRecord("b1", "raw/other", "other", M_MS + 5, 99)) is False
    assert stores.batches.get("b1") == before


def test_mark_done_records_the_counts(stores: Stores) -> None:
    stores.batches.create(pending("b1"))
    stores.batches.mark_done("b1", 6, 1, {"schema_violation": 2, "malformed_json": 1})
    record = stores.batches.get("b1")
    assert record is not None
    assert record.status is BatchStatus.DONE
    assert (record.curated, record.duplicates, record.rejected) == (6, 1, 3)
    assert record.rejected_by_code == {"schema_violation": 2, "malformed_json": 1}
    assert record.error is None


def test_mark_failed_records_the_error_and_mark_done_clears_it(stores: Stores) -> None:
    # GIVEN a failed batch
    stores.batches.create(pending("b1"))
    stores.batches.mark_failed("b1", "StorageError: disk full")
    failed = stores.batches.get("b1")
    assert failed is not None
    assert (failed.status, failed.error) == (BatchStatus.FAILED, "StorageError: disk full")
    # WHEN a replay finishes it
    stores.batches.mark_done("b1", 10, 0, {})
    # THEN it is done, without the error
    done = stores.batches.get("b1")
    assert done is not None
    assert (done.status, done.error, done.curated) == (BatchStatus.DONE, None, 10)


def test_mark_failed_never_overrides_done(stores: Stores) -> None:
    stores.batches.create(pending("b1"))
    stores.batches.mark_done("b1", 10, 0, {})
    # WHEN a late failure of an earlier try arrives THEN the batch stays done
    stores.batches.mark_failed("b1", "States.Timeout: late")
    record = stores.batches.get("b1")
    assert record is not None
    assert (record.status, record.error, record.curated) == (BatchStatus.DONE, None, 10)


def test_marking_an_unknown_batch_writes_nothing(stores: Stores) -> None:
    stores.batches.mark_done("ghost", 1, 0, {})
    stores.batches.mark_failed("ghost", "boom")
    assert stores.batches.get("ghost") is None
    assert stores.batches.unfinished() == []


def test_unfinished_lists_pending_and_failed_oldest_first(stores: Stores) -> None:
    # GIVEN batches created out of time order, some finished
    for batch_id, at in [("late", M_MS + 300), ("done", M_MS), ("early", M_MS - 100), ("failed", M_MS + 100)]:
        stores.batches.create(pending(batch_id, at))
    stores.batches.mark_done("done", 1, 0, {})
    stores.batches.mark_failed("failed", "boom")
    # THEN unfinished holds the pending and failed ones, by received time
    unfinished = stores.batches.unfinished()
    assert [(r.batch_id, r.status) for r in unfinished] == [
        ("early", BatchStatus.PENDING),
        ("failed", BatchStatus.FAILED),
        ("late", BatchStatus.PENDING),
    ]
    assert unfinished[1].error == "boom"
    # AND once all are done, nothing is unfinished
    for record in unfinished:
        stores.batches.mark_done(record.batch_id, 0, 0, {})
    assert stores.batches.unfinished() == []

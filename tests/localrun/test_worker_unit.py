"""The local worker runs pending batches in groups: one SQLite commit for up to about 2,000 events."""

from __future__ import annotations

from eventpipe.core.model import BatchRecord
from eventpipe.localrun.worker import _groups


def record(batch_id: str, received: int) -> BatchRecord:
    return BatchRecord(batch_id, f"raw/{batch_id}.ndjson", "test", 0, received)


def test_batches_are_grouped_in_order_up_to_the_event_limit() -> None:
    records = [record("a", 900), record("b", 900), record("c", 300), record("d", 100)]
    groups = [[r.batch_id for r in group] for group in _groups(records, 2000)]
    assert groups == [["a", "b"], ["c", "d"]]


def test_a_batch_larger_than_the_limit_is_a_group_of_its_own() -> None:
    records = [record("a", 100), record("big", 5000), record("c", 100)]
    groups = [[r.batch_id for r in group] for group in _groups(records, 2000)]
    assert groups == [["a"], ["big"], ["c"]]
    assert list(_groups([], 2000)) == []

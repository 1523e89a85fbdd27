"""The working sketches a store keeps between batches give the same bytes as merging from the stored ones."""

from __future__ import annotations

import datasketches

from eventpipe.core.aggregate import new_user_sketch, union_of
from eventpipe.core.funnel import merged_step, new_step_sketch
from eventpipe.core.working_sketches import WorkingSketches


def _users(prefix: str, count: int) -> datasketches.hll_sketch:
    sketch = new_user_sketch()
    for number in range(count):
        sketch.update(f"{prefix}-{number}")
    return sketch


def _sessions(prefix: str, count: int) -> datasketches.update_theta_sketch:
    sketch = new_step_sketch()
    for number in range(count):
        sketch.update(f"{prefix}-{number}")
    return sketch


def _estimate(blob: bytes) -> float:
    return float(datasketches.hll_sketch.deserialize(blob).get_estimate())


def test_users_kept_in_memory_count_the_same_as_users_merged_from_the_stored_bytes() -> None:
    # GIVEN a working cache and a cache-less path (a fresh cache each batch)
    working: WorkingSketches[int] = WorkingSketches()
    stored: bytes | None = None
    fresh: bytes | None = None
    # WHEN ten batches of 3,000 users each (the sketch turns dense) go through both
    for batch in range(10):
        users = _users(f"b{batch}", 3_000)
        stored = working.merged_users(7, [users], stored)
        fresh = WorkingSketches[int]().merged_users(7, [users], fresh)
    # THEN both hold the same registers, and 30,000 users within 2%
    assert stored == fresh
    assert abs(_estimate(stored) - 30_000) < 600
    assert union_of([stored]) is not None


def test_bytes_written_by_someone_else_are_merged_rather_than_the_kept_union() -> None:
    # GIVEN a union kept for a minute
    working: WorkingSketches[int] = WorkingSketches()
    mine = working.merged_users(1, [_users("a", 100)], None)
    # WHEN the stored bytes are not those it wrote (another writer, a rolled-back transaction)
    other = WorkingSketches[int]().merged_users(1, [_users("z", 500)], None)
    merged = working.merged_users(1, [_users("b", 100)], other)
    # THEN the result is the stored sketch and the batch's, without the kept union's users
    assert abs(_estimate(merged) - 600) < 12
    assert merged != working.merged_users(2, [_users("b", 100)], mine)


def _step_content(blob: bytes) -> tuple[int, list[int]]:
    """A step sketch's sampling threshold and the hashes it keeps, whatever their order in its bytes."""
    sketch = datasketches.compact_theta_sketch.deserialize(blob)
    return sketch.theta64, sorted(sketch)


def test_step_sketches_kept_in_memory_equal_the_merge_of_stored_bytes() -> None:
    working: WorkingSketches[int] = WorkingSketches()
    stored: bytes | None = None
    fresh: bytes | None = None
    for batch in range(6):
        sessions = _sessions(f"s{batch}", 400)  # past the sketch's 1,024 entries: it samples
        stored = working.merged_step(3, [sessions], stored)
        fresh = merged_step(sessions, fresh)
    assert stored is not None
    assert fresh is not None
    assert _step_content(stored) == _step_content(fresh)
    assert datasketches.compact_theta_sketch.deserialize(stored).num_retained == 1_024


def test_step_sketches_rebuilt_from_someone_elses_bytes_keep_their_sessions() -> None:
    # GIVEN a step sketch written by another writer, in the ordered, compressed form
    other = merged_step(_sessions("z", 50), None)
    working: WorkingSketches[int] = WorkingSketches()
    # WHEN a batch merges into it
    merged = working.merged_step(1, [_sessions("a", 30)], other)
    # THEN both writers' sessions are kept
    assert datasketches.compact_theta_sketch.deserialize(merged).get_estimate() == 80


def test_the_cache_keeps_at_most_its_capacity() -> None:
    working: WorkingSketches[int] = WorkingSketches(capacity=2)
    blobs = [working.merged_users(minute, [_users(str(minute), 10)], None) for minute in range(3)]
    # minute 0 was dropped: its union is rebuilt from the stored bytes, with the same result
    again = working.merged_users(0, [_users("x", 10)], blobs[0])
    assert abs(_estimate(again) - 20) < 1
    assert len(working._users) == 2

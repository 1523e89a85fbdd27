"""SketchCache: a hit only at the version read, least recently used minutes evicted past the byte bound."""

from __future__ import annotations

import pytest

from eventpipe.adapters.aws.sketch_cache import SketchCache


def test_a_minute_is_served_only_at_the_version_it_was_read_under() -> None:
    # GIVEN a minute's sketches cached at version 3
    cache = SketchCache(max_bytes=10_000)
    cache.put((60, ""), 3, {"users": b"abc", "s0": b"d"})
    # THEN version 3 is a hit, any other version a miss
    assert cache.get((60, ""), 3) == {"users": b"abc", "s0": b"d"}
    assert cache.get((60, ""), 4) is None
    assert cache.get((60, "h:shop"), 3) is None
    assert (cache.hits, cache.misses) == (1, 2)
    # AND a newer read replaces the entry
    cache.put((60, ""), 4, {"users": b"x"})
    assert cache.get((60, ""), 3) is None
    assert cache.get((60, ""), 4) == {"users": b"x"}
    assert len(cache) == 1


def test_the_least_recently_used_minutes_leave_first_and_the_bytes_stay_bounded() -> None:
    # GIVEN room for about three entries of 1,000 bytes
    cache = SketchCache(max_bytes=3_700)
    for minute in (0, 60, 120):
        cache.put((minute, ""), 1, {"users": bytes(1_000)})
    # WHEN minute 0 is used again and a fourth minute comes in
    assert cache.get((0, ""), 1) is not None
    cache.put((180, ""), 1, {"users": bytes(1_000)})
    # THEN minute 60, the least recently used, left; the bound holds
    assert cache.get((60, ""), 1) is None
    assert all(cache.get((minute, ""), 1) is not None for minute in (0, 120, 180))
    assert cache.bytes <= cache.max_bytes


def test_an_entry_larger_than_the_cache_is_not_kept_and_evicts_nothing() -> None:
    cache = SketchCache(max_bytes=2_000)
    cache.put((0, ""), 1, {"users": bytes(500)})
    cache.put((60, ""), 1, {"users": bytes(5_000)})
    assert cache.get((60, ""), 1) is None
    assert cache.get((0, ""), 1) is not None


def test_a_cache_without_room_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        SketchCache(max_bytes=0)

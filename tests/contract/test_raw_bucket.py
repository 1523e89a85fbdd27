"""The `RawBucket` port's contract (core/ports.py), on every backend: memory, a folder, S3 and Blob Storage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from eventpipe.core.errors import ObjectNotFoundError

if TYPE_CHECKING:
    from eventpipe.core.ports import RawBucket


@pytest.mark.parametrize("durable", [True, False])
def test_put_then_get_gives_back_the_same_bytes(bucket: RawBucket, durable: bool) -> None:
    # GIVEN bytes that are not text (a newline, a NUL, every byte value), under a nested key
    data = b'{"a":1}\n\x00\xc3\xa9' + bytes(range(256)) * 3
    key = "raw/deep/er/batch 1.ndjson"
    # WHEN they are put THEN get gives them back unchanged, and the key is listed under its prefix only
    bucket.put(key, data, durable=durable)
    assert bucket.get(key) == data
    assert list(bucket.keys("raw/")) == [key]
    assert list(bucket.keys("staged/")) == []


def test_an_empty_object_round_trips(bucket: RawBucket) -> None:
    bucket.put("staged/empty", b"")
    assert bucket.get("staged/empty") == b""
    assert list(bucket.keys("staged/")) == ["staged/empty"]


def test_put_replaces_an_existing_object(bucket: RawBucket) -> None:
    bucket.put("raw/b.ndjson", b"first version, longer than the second")
    bucket.put("raw/b.ndjson", b"second")
    assert bucket.get("raw/b.ndjson") == b"second"  # no leftover tail of the old one
    assert list(bucket.keys("raw/")) == ["raw/b.ndjson"]


def test_reading_a_missing_key_is_object_not_found(bucket: RawBucket) -> None:
    with pytest.raises(ObjectNotFoundError, match="raw/missing"):
        bucket.get("raw/missing")


def test_delete_removes_the_object_and_deleting_again_is_harmless(bucket: RawBucket) -> None:
    # GIVEN two objects
    bucket.put("staged/a.ndjson", b"a")
    bucket.put("staged/b.ndjson", b"b")
    # WHEN one is deleted, twice (a retried step), and a key that never was
    bucket.delete("staged/a.ndjson")
    bucket.delete("staged/a.ndjson")
    bucket.delete("staged/never")
    # THEN it is gone and the other is left
    with pytest.raises(ObjectNotFoundError):
        bucket.get("staged/a.ndjson")
    assert list(bucket.keys("staged/")) == ["staged/b.ndjson"]


def test_keys_are_listed_in_string_order_like_s3(bucket: RawBucket) -> None:
    # GIVEN keys where a character below '/' follows a common start, written out of order
    for key in ["raw/a0", "raw/a/b", "raw/a.x", "raw/a-c"]:
        bucket.put(key, b"x", durable=False)
    # THEN they are listed in string order, as S3 lists them
    assert list(bucket.keys("raw/")) == ["raw/a-c", "raw/a.x", "raw/a/b", "raw/a0"]


def test_keys_match_a_prefix_that_is_not_a_whole_folder(bucket: RawBucket) -> None:
    bucket.put("raw/b1.ndjson", b"x")
    bucket.put("raw/b2.ndjson", b"x")
    bucket.put("raw/b1/nested", b"x")
    assert list(bucket.keys("raw/b1")) == ["raw/b1.ndjson", "raw/b1/nested"]
    assert list(bucket.keys("raw/c")) == []
    assert list(bucket.keys("nothing/")) == []

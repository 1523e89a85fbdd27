"""Byte ranges of an NDJSON object: whatever the cut points, every line is read by exactly one range."""

from __future__ import annotations

import io
import random

import pytest

from eventpipe.core.ranges import byte_ranges, range_lines, range_reading_start
from eventpipe.core.readers import KEPT_PREFIX_BYTES


def read_all(data: bytes, range_bytes: int, max_event_bytes: int = 1000) -> list[bytes | None]:
    found: list[bytes | None] = []
    for start, end in byte_ranges(len(data), range_bytes):
        reader = io.BufferedReader(io.BytesIO(data[range_reading_start(start) :]))  # S3's Range: bytes=<start-1>-
        found += [line.data for line in range_lines(reader, start=start, end=end, max_event_bytes=max_event_bytes)]
    return found


def test_byte_ranges_cover_the_object() -> None:
    assert byte_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert byte_ranges(8, 4) == [(0, 4), (4, 8)]
    assert byte_ranges(0, 4) == []
    with pytest.raises(ValueError, match="positive"):
        byte_ranges(10, 0)


@pytest.mark.parametrize("seed", range(40))
def test_every_line_is_read_once_whatever_the_range_size(seed: int) -> None:
    # GIVEN NDJSON with lines of random lengths, blank lines and CRLF endings, with or without a final newline
    rng = random.Random(seed)
    lines = [b'{"n":%d,"pad":"%s"}' % (n, b"x" * rng.randrange(0, 80)) for n in range(rng.randrange(1, 60))]
    ends = [rng.choice([b"\n", b"\r\n", b"\n\n"]) for _ in lines]
    data = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    if rng.random() < 0.5:
        data = data.rstrip(b"\r\n")
    # WHEN it is read in ranges of any size, down to one byte
    for range_bytes in {1, 2, 3, rng.randrange(1, 200), len(data), len(data) + 7}:
        # THEN the ranges together give each line once, in order
        assert read_all(data, range_bytes) == lines, range_bytes


def test_a_line_starting_exactly_at_a_range_start_belongs_to_that_range() -> None:
    data = b"aaaa\nbbbb\ncccc\n"  # lines start at 0, 5 and 10
    first = list(range_lines(io.BytesIO(data), start=0, end=5, max_event_bytes=100))
    second = list(range_lines(io.BytesIO(data[4:]), start=5, end=10, max_event_bytes=100))
    assert [line.data for line in first] == [b"aaaa"]
    assert [line.data for line in second] == [b"bbbb"]


def test_an_oversize_line_is_refused_with_its_start_kept_and_the_next_range_skips_its_rest() -> None:
    big = b'{"big":"' + b"y" * 5000 + b'"}'
    data = b'{"a":1}\n' + big + b'\n{"b":2}\n'
    found = []
    for start, end in byte_ranges(len(data), 1500):
        reader = io.BytesIO(data[range_reading_start(start) :])
        found += list(range_lines(reader, start=start, end=end, max_event_bytes=2000))
    assert [line.data for line in found] == [b'{"a":1}', None, b'{"b":2}']
    assert found[1].prefix == big[:KEPT_PREFIX_BYTES]


def test_a_bom_is_dropped_from_the_first_line_only() -> None:
    data = b'\xef\xbb\xbf{"a":1}\n{"b":2}\n'
    assert read_all(data, 5) == [b'{"a":1}', b'{"b":2}']

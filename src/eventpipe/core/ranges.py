"""Cut a large NDJSON object into byte ranges that separate invocations read, each line exactly once.

A range `[start, end)` owns the lines that *start* inside it: it reads from byte `start - 1`, skips
through the first newline (the end of the line the previous range owns, or an empty skip when a line
starts exactly at `start`), then reads whole lines until a line would start at or after `end`; its
last line may run past `end`. So the ranges of one object, whatever their size, read every line once.

Only plain NDJSON can be cut this way: a gzip stream cannot be entered midway, and a JSON document
(array, `{"events": [...]}`) is at most `EVENTPIPE_MAX_BODY_BYTES` anyway. A line's `position` is
its number within the range (1-based); the batch ids name the range, so a refusal is found by its
batch and position, and its text is kept in the quarantine.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from eventpipe.core.readers import KEPT_PREFIX_BYTES, UTF8_BOM, Line

if TYPE_CHECKING:
    from collections.abc import Iterator

SKIP_READ_BYTES = 1024 * 1024


def byte_ranges(size: int, range_bytes: int) -> list[tuple[int, int]]:
    """`[start, end)` pairs covering `size` bytes, each `range_bytes` long but the last."""
    if range_bytes <= 0:
        raise ValueError("range_bytes must be positive")
    return [(start, min(start + range_bytes, size)) for start in range(0, size, range_bytes)]


def range_reading_start(start: int) -> int:
    """The byte to read from for the range starting at `start` (one before it: see the module's doc)."""
    return max(0, start - 1)


def range_lines(reader: IO[bytes], *, start: int, end: int, max_event_bytes: int) -> Iterator[Line]:
    """The events of the lines that start in `[start, end)`; `reader` begins at `range_reading_start(start)`.

    Blank lines are skipped; a line over `max_event_bytes` is refused as read (its first KiB kept), as
    `iter_lines` does for a whole file.
    """
    offset = range_reading_start(start)
    if start > 0:
        offset += _skip_through_newline(reader)
    number = 0
    while offset < end:
        raw = reader.readline(max_event_bytes + 1)
        if not raw:
            return
        offset += len(raw)
        if number == 0 and start == 0:
            raw = raw.removeprefix(UTF8_BOM)
        number += 1
        if len(raw) > max_event_bytes and not raw.endswith(b"\n"):
            prefix = raw[:KEPT_PREFIX_BYTES]
            offset += _skip_through_newline(reader)
            yield Line(number, None, prefix)
            continue
        data = raw.rstrip(b"\r\n")
        if data.strip():
            yield Line(number, data)


def _skip_through_newline(reader: IO[bytes]) -> int:
    """Read up to and including the next newline (or to the end); the number of bytes read."""
    skipped = 0
    while True:
        chunk = reader.readline(SKIP_READ_BYTES)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped

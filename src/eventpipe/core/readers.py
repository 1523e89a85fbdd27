"""Read events from a byte stream (a file, an S3 object, a request body) in bounded memory.

Accepts NDJSON, a JSON array, `{"events": [...]}` or a single event, each optionally gzip-compressed.
NDJSON is streamed line by line; a whole JSON document must fit in `max_document_bytes`. An input
that small is parsed whole first: NDJSON of two or more lines never parses as one document, so
the test is exact; a larger one is NDJSON unless it starts like a batch document.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import orjson

from eventpipe.core.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterator

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
# A batch document (an array, or an object with "events"), as opposed to NDJSON's one event a line.
BATCH_DOCUMENT = re.compile(rb'\s*(\[|\{\s*"events"\s*:)')
# How much of an oversize event is kept in quarantine, so it can be looked at, not replayed.
KEPT_PREFIX_BYTES = 1024
# Why an event of a JSON document is refused when orjson cannot write it back (past 254 levels).
TOO_DEEP = "event nested deeper than 254 levels of arrays and objects; none of its text is kept"


class InputTooLargeError(InputError):
    """The input expands past its size limit; reading stopped there."""


@dataclass(frozen=True, slots=True)
class Line:
    """One candidate event. `data` is None when it is refused as read: over the size limit (`prefix`
    keeps its start) or, with `problem` saying why, not storable at all (`prefix` is then empty)."""

    position: int  # 1-based line number in a stream, or 0-based index in a JSON array
    data: bytes | None
    prefix: bytes = b""
    problem: str | None = None


class _LimitedReader(io.RawIOBase):
    """Counts the bytes read through it and refuses to go past `limit`: stops gzip bombs early."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        self.total += len(data)
        if self.total > self._limit:
            raise InputTooLargeError(f"input expands past the limit of {self._limit} bytes; stopped reading")
        buffer[: len(data)] = data
        return len(data)


def open_events(stream: IO[bytes], *, max_total_bytes: int) -> IO[bytes]:
    """A buffered reader over `stream`, transparently gunzipped, refusing input past `max_total_bytes`.

    The caller's stream is read, never closed.
    """
    magic = stream.read(2)
    source: IO[bytes] = io.BufferedReader(_Chain(io.BytesIO(magic), stream))
    if magic == GZIP_MAGIC:
        source = gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[assignment]
    return io.BufferedReader(_LimitedReader(source, max_total_bytes), buffer_size=256 * 1024)


def iter_lines(
    stream: IO[bytes], *, max_event_bytes: int, max_total_bytes: int, max_document_bytes: int
) -> Iterator[Line]:
    """Yield every event of `stream` as a `Line`; blank lines are skipped.

    Raises `InputTooLargeError` past `max_total_bytes` (events before it were already yielded) and
    `InputError` for input that is not UTF-8-free-form text at all (e.g. a broken gzip stream).
    """
    reader = open_events(stream, max_total_bytes=max_total_bytes)
    try:
        head = reader.read(max_document_bytes + 1).removeprefix(UTF8_BOM)
        if len(head) <= max_document_bytes:  # the whole input: one parse tells a document from NDJSON
            try:
                yield from _document_events(orjson.loads(head), max_event_bytes)
                return
            except orjson.JSONDecodeError:
                pass  # NDJSON (two or more lines never parse as one document), or broken
        elif BATCH_DOCUMENT.match(head):
            raise InputTooLargeError(
                f"a JSON document larger than {max_document_bytes} bytes; send NDJSON (one event a line)"
            )
        lines = io.BufferedReader(_Chain(io.BytesIO(head), reader), buffer_size=256 * 1024)
        yield from _ndjson(lines, max_event_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot read input: {exc}") from exc


def _read_line(reader: IO[bytes], limit: int) -> tuple[bytes, bool] | None:
    """The next line without its end, and whether it fit in `limit`; None at end of input."""
    line = reader.readline(limit + 1)
    if not line:
        return None
    if len(line) > limit and not line.endswith(b"\n"):
        prefix = line[:KEPT_PREFIX_BYTES]
        blank = not line.strip()
        while line and not line.endswith(b"\n"):  # skip the rest of the oversize line
            line = reader.readline(1024 * 1024)
            blank = blank and not line.strip()
        return (b"", True) if blank else (prefix, False)  # a long run of whitespace is a blank line
    return line.rstrip(b"\r\n"), True


def _ndjson(reader: IO[bytes], limit: int) -> Iterator[Line]:
    number = 0
    while (current := _read_line(reader, limit)) is not None:
        number += 1
        data, fits = current
        if not fits:
            yield Line(number, None, data)
        elif data.strip():
            yield Line(number, data)


def _document_events(value: Any, max_event_bytes: int) -> list[Line]:
    if isinstance(value, dict) and isinstance(value.get("events"), list):
        value = value["events"]
    if not isinstance(value, list):
        value = [value]
    lines = []
    for index, item in enumerate(value):
        try:
            data = orjson.dumps(item)
        except orjson.JSONEncodeError:  # refused alone, as the same event on an NDJSON line would be
            lines.append(Line(index, None, problem=TOO_DEEP))
            continue
        too_large = len(data) > max_event_bytes
        lines.append(Line(index, None, data[:KEPT_PREFIX_BYTES]) if too_large else Line(index, data))
    return lines


class _Chain(io.RawIOBase):
    """Reads `first` to its end, then `second`."""

    def __init__(self, first: IO[bytes], second: IO[bytes]) -> None:
        self._parts = [first, second]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._parts:
            data = self._parts[0].read(len(buffer))
            if data:
                buffer[: len(data)] = data
                return len(data)
            self._parts.pop(0)
        return 0

"""Read events from a byte stream (a file, an S3 object, a request body) in bounded memory.

Accepts NDJSON, a JSON array, `{"events": [...]}` or a single event, each optionally gzip-compressed.
NDJSON is streamed line by line; a whole JSON document must fit in `max_document_bytes`. An input
that small is parsed whole first: NDJSON of two or more lines never parses as one document, so
the test is exact; a larger one is NDJSON unless it starts like a batch document.
"""

from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import orjson

from eventpipe.core.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

GZIP_MAGIC = b"\x1f\x8b"
GUNZIP_READ_BYTES = 64 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
# A batch document (an array, or an object with "events"), as opposed to NDJSON's one event a line.
BATCH_DOCUMENT = re.compile(rb'\s*(\[|\{\s*"events"\s*:)')
# How much of an oversize event is kept in quarantine, so it can be looked at, not replayed.
KEPT_PREFIX_BYTES = 1024
# Why an event of a JSON document is refused when orjson cannot write it back (past 254 levels).
TOO_DEEP = "event nested deeper than 254 levels of arrays and objects; none of its text is kept"


class InputTooLargeError(InputError):
    """The input expands past its size limit; reading stopped there."""


class DamagedInputError(InputError):
    """A compressed stream breaks off (truncated or corrupt); every complete line before it was read."""


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 1.5 µs more, once per line read
class Line:
    """One candidate event. `data` is None when it is refused as read: over the size limit (`prefix`
    keeps its start) or, with `problem` saying why, not storable at all (`prefix` is then empty)."""

    position: int  # 1-based line number in a stream, or 0-based index in a JSON array
    data: bytes | None
    prefix: bytes = b""
    problem: str | None = None
    line: int | None = None  # the 1-based line number, in a stream (NDJSON)


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


class _Gunzip(io.RawIOBase):
    """A gzip stream (one member or several, concatenated) decompressed as it is read, in bounded memory.

    Where the stream breaks off (truncated, or corrupt), it ends as if there and notes the damage. It
    gives out every byte that came before the damage: `gzip.GzipFile` drops what it decompressed in the
    read that meets the damage, so how much of a cut file would be kept depended on read sizes.
    """

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self._input = b""
        self._member: Any = None  # the zlib decompressor of the member being read, None between members
        self._done = False
        self.damage: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._done:
            if not self._input:
                self._input = self._inner.read(GUNZIP_READ_BYTES)
                if not self._input:
                    self._end(None if self._member is None else "the file ends inside a gzip member: it is cut short")
                    break
            if self._member is None:
                self._member = zlib.decompressobj(wbits=31)  # 31: gzip's header and trailer (CRC-32, size)
            try:
                out = self._member.decompress(self._input, len(buffer))  # bounded: a gzip bomb stays small
            except zlib.error as exc:
                self._end(f"corrupt gzip data: {exc}")
                break
            self._input = self._member.unconsumed_tail
            if self._member.eof:  # the member is complete and checked; another one may follow
                self._input, self._member = self._member.unused_data, None
            if out:
                buffer[: len(out)] = out
                return len(out)
        return 0

    def _end(self, damage: str | None) -> None:
        self._done, self.damage = True, damage


def open_events(stream: IO[bytes], *, max_total_bytes: int) -> tuple[IO[bytes], _Gunzip | None]:
    """A buffered reader over `stream`, transparently gunzipped, refusing input past `max_total_bytes`;
    and, for gzip, the guard that says where the stream broke off, if it did.

    The caller's stream is read, never closed.
    """
    magic = stream.read(2)
    source: IO[bytes] = io.BufferedReader(_Chain(io.BytesIO(magic), stream))
    guard = None
    if magic == GZIP_MAGIC:
        guard = _Gunzip(source)
        source = guard  # type: ignore[assignment]
    return io.BufferedReader(_LimitedReader(source, max_total_bytes), buffer_size=256 * 1024), guard


def iter_lines(
    stream: IO[bytes], *, max_event_bytes: int, max_total_bytes: int, max_document_bytes: int
) -> Iterator[Line]:
    """Yield every event of `stream` as a `Line`; blank lines are skipped.

    Raises `InputTooLargeError` past `max_total_bytes` (events before it were already yielded) and
    `DamagedInputError` after yielding every complete line before the point where a gzip stream breaks
    off (the cut line itself is dropped: it may be any part of an event).
    """
    reader, guard = open_events(stream, max_total_bytes=max_total_bytes)
    try:
        yield from _events(reader, guard, max_event_bytes, max_document_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot read input: {exc}") from exc
    if guard is not None and guard.damage is not None:
        raise DamagedInputError(f"cannot read input: the gzip stream breaks off ({guard.damage})")


def body_lines(body: bytes, *, max_event_bytes: int, max_total_bytes: int, max_document_bytes: int) -> Iterator[Line]:
    """`iter_lines` of an input held whole in memory (a request's body): the same lines, by the same
    `_ndjson`, but without a stream's layers (the limit counter, the buffers), which cost a 10-event
    request half of its reading. Gzip, and an input past either limit, go through `iter_lines`."""
    if body[:2] == GZIP_MAGIC or len(body) > min(max_total_bytes, max_document_bytes):
        yield from iter_lines(
            io.BytesIO(body),
            max_event_bytes=max_event_bytes,
            max_total_bytes=max_total_bytes,
            max_document_bytes=max_document_bytes,
        )
        return
    head = body.removeprefix(UTF8_BOM)  # what `_events` reads first: here the whole input
    if not _two_documents(head):
        try:
            yield from _document_events(orjson.loads(head), max_event_bytes, head)
            return
        except orjson.JSONDecodeError:
            pass
    yield from _ndjson(io.BytesIO(head), max_event_bytes, damaged=lambda: False)  # no gzip, nothing to damage


def _two_documents(data: bytes) -> bool:
    """Whether `data` holds an object closed and another opened after it on a new line: NDJSON's
    lines, which cannot parse as one JSON document (no string holds a raw newline, and no `{` follows
    a `}` in one), so the parse that would fail is not tried (its error cost a 10-event request 3 µs)."""
    return b"}\n{" in data or b"}\r\n{" in data


def _events(reader: IO[bytes], guard: _Gunzip | None, max_event_bytes: int, max_document_bytes: int) -> Iterator[Line]:
    head = reader.read(max_document_bytes + 1).removeprefix(UTF8_BOM)
    if len(head) <= max_document_bytes:  # the whole input: one parse tells a document from NDJSON
        try:
            yield from _document_events(orjson.loads(head), max_event_bytes, head)
            return
        except orjson.JSONDecodeError:
            pass  # NDJSON (two or more lines never parse as one document), or broken
    elif BATCH_DOCUMENT.match(head):
        raise InputTooLargeError(
            f"a JSON document larger than {max_document_bytes} bytes; send NDJSON (one event a line)"
        )
    lines = io.BufferedReader(_Chain(io.BytesIO(head), reader), buffer_size=256 * 1024)
    yield from _ndjson(lines, max_event_bytes, damaged=lambda: guard is not None and guard.damage is not None)


def _rest_of_line(reader: IO[bytes], line: bytes, limit: int) -> tuple[bytes, bool, bool]:
    """A line `readline` returned without its newline: the input's last line, or one past `limit`.
    Its text without its end, whether it fit in `limit` and whether it ended with a newline."""
    if len(line) > limit:
        prefix = line[:KEPT_PREFIX_BYTES]
        blank = not line.strip()
        while line and not line.endswith(b"\n"):  # skip the rest of the oversize line
            line = reader.readline(1024 * 1024)
            blank = blank and not line.strip()
        ended = line.endswith(b"\n")
        return (b"", True, ended) if blank else (prefix, False, ended)  # a long run of whitespace is a blank line
    return line.rstrip(b"\r\n"), True, False


def _ndjson(reader: IO[bytes], limit: int, *, damaged: Callable[[], bool]) -> Iterator[Line]:
    readline = reader.readline
    number = 0
    # Once per line read: a whole line within the limit takes the first branch, and `Line` is given
    # its fields in order (keywords cost more). 0.87 -> 0.67 µs a line of the benchmark's stream.
    while line := readline(limit + 1):
        number += 1
        if line[-1:] == b"\n":
            data, fits, ended = line.rstrip(b"\r\n"), True, True
        else:
            data, fits, ended = _rest_of_line(reader, line, limit)
        if not ended and damaged():  # the line the damage cut: not an event, and no line follows it
            return
        if not fits:
            yield Line(number, None, data, None, number)
        elif data and not data.isspace():  # not blank (isspace: no copy, unlike strip)
            yield Line(number, data, b"", None, number)


def _document_events(value: Any, max_event_bytes: int, document: bytes) -> list[Line]:
    if isinstance(value, dict) and isinstance(value.get("events"), list):
        value = value["events"]
    if not isinstance(value, list):
        value = [value]
        spans: list[tuple[int, int]] | None = [(0, len(document))]
    else:
        spans = event_spans(document)
        if spans is not None and len(spans) != len(value):
            spans = None  # cannot be told apart (duplicate "events" keys?): fall back to the parsed values
    lines = []
    for index, item in enumerate(value):
        try:
            text = orjson.dumps(item)  # also the check that it can be stored: orjson writes 254 levels at most
        except orjson.JSONEncodeError:  # refused alone, as the same event on an NDJSON line would be
            lines.append(Line(index, None, problem=TOO_DEEP))
            continue
        if spans is not None:
            # The text as received, not re-serialised (a 30-digit number would come back as a float). A
            # line break outside a string is whitespace, and inside one JSON allows none: one event a line.
            start, end = spans[index]
            text = document[start:end].strip().replace(b"\r", b" ").replace(b"\n", b" ")
        too_large = len(text) > max_event_bytes
        lines.append(Line(index, None, text[:KEPT_PREFIX_BYTES]) if too_large else Line(index, text))
    return lines


# A token the scan of a document needs: a whole string (its escapes too), or a structural character.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')


def event_spans(document: bytes) -> list[tuple[int, int]] | None:
    """Where each event of a parsed JSON document is in its text: the byte spans of the elements of a
    top-level array, or of the `"events"` array of a top-level object (its last, as the parser keeps the
    last of repeated keys); None when the document has neither."""
    target = 0 if document.lstrip()[:1] == b"[" else 1  # the depth the events' array opens at
    found: list[tuple[int, int]] | None = None
    spans: list[tuple[int, int]] = []
    depth, start, collecting = 0, 0, False
    key: bytes | None = None
    last_string = b""
    for match in _TOKEN.finditer(document):
        token = match.group()
        char = token[:1]
        if char == b'"':
            last_string = token
        elif char == b":":
            if depth == 1:
                key = last_string
        elif char in b"[{":
            depth += 1
            if char == b"[" and depth == target + 1 and not collecting and (target == 0 or _is_events(key)):
                collecting, spans, start = True, [], match.end()
        elif char in b"]}":
            if collecting and depth == target + 1:
                if document[start : match.start()].strip():
                    spans.append((start, match.start()))
                found, collecting = spans, False
            depth -= 1
        elif collecting and depth == target + 1:  # a comma between two events
            spans.append((start, match.start()))
            start = match.end()
    return found


def _is_events(key: bytes | None) -> bool:
    return key == b'"events"' or (key is not None and b"\\" in key and orjson.loads(key) == "events")


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

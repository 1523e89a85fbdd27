from __future__ import annotations

import gzip
import io
import os
from typing import Any

import orjson
import pytest

from eventpipe.core.errors import InputError
from eventpipe.core.readers import InputTooLargeError, Line, body_lines, iter_lines


def read(data: bytes, *, event: int = 100, total: int = 10_000, document: int = 1_000) -> list[Line]:
    stream = io.BytesIO(data)
    return list(iter_lines(stream, max_event_bytes=event, max_total_bytes=total, max_document_bytes=document))


def test_ndjson_lines_keep_their_line_numbers_and_skip_blank_lines() -> None:
    lines = read(b'{"a":1}\r\n\n  \n{"b":2}\n{"c":3}')
    assert [(line.position, line.data) for line in lines] == [
        (1, b'{"a":1}'),
        (4, b'{"b":2}'),
        (5, b'{"c":3}'),
    ]


def test_a_malformed_first_line_is_passed_on_not_fatal() -> None:
    # GIVEN NDJSON whose first line is broken: it must reach validation with its line number
    lines = read(b'{"broken": \n{"b":2}\n')
    assert [(line.position, line.data) for line in lines] == [(1, b'{"broken": '), (2, b'{"b":2}')]


@pytest.mark.parametrize(
    "data",
    [b'[{"a":1}, {"b":2}]', b'{"events": [{"a":1}, {"b":2}]}', b'[\n  {"a": 1},\n  {"b": 2}\n]\n'],
)
def test_json_documents_yield_their_events_by_index(data: bytes) -> None:
    # each event's text as sent (spaces and all), see test_a_documents_events_keep_the_text_they_were_sent_as
    assert [(line.position, parsed(line)) for line in read(data)] == [(0, {"a": 1}), (1, {"b": 2})]


def parsed(line: Line) -> Any:
    assert line.data is not None
    return orjson.loads(line.data)


def test_a_pretty_printed_single_event_is_one_event() -> None:
    assert [line.data for line in read(b'{\n  "a": 1\n}\n')] == [b'{   "a": 1 }']


def test_an_oversize_line_is_marked_and_skipped_without_losing_the_next() -> None:
    # GIVEN a line over the 100-byte limit between two good ones
    lines = read(b'{"a":1}\n{"big":"' + b"x" * 5000 + b'"}\n{"c":3}\n')
    # THEN it is marked too large, keeps its start, and the next line is intact
    assert [line.position for line in lines] == [1, 2, 3]
    assert lines[1].data is None
    assert lines[1].prefix.startswith(b'{"big":"xxx')
    assert lines[2].data == b'{"c":3}'


def test_gzip_is_read_transparently() -> None:
    assert [line.data for line in read(gzip.compress(b'{"a":1}\n{"b":2}\n'))] == [b'{"a":1}', b'{"b":2}']


def test_a_gzip_bomb_stops_at_the_limit_without_reading_to_the_end() -> None:
    # GIVEN 100 MB of events compressed to about 100 KB, and a 1 MB limit
    bomb = gzip.compress(b'{"a":1}\n' * 12_500_000, compresslevel=9)
    stream = io.BytesIO(bomb)
    # WHEN read
    with pytest.raises(InputTooLargeError, match="limit of 1000000 bytes"):
        for _ in iter_lines(stream, max_event_bytes=100, max_total_bytes=1_000_000, max_document_bytes=1000):
            pass
    # THEN reading stopped early: most of the compressed stream was never consumed
    assert stream.tell() < len(bomb)


def test_a_json_document_over_its_limit_is_refused_with_advice() -> None:
    with pytest.raises(InputTooLargeError, match="NDJSON"):
        read(b"[" + b'{"a":1},' * 500 + b'{"a":1}]')


def test_an_empty_input_yields_nothing() -> None:
    assert read(b"") == []


def test_a_corrupt_gzip_stream_is_an_input_error() -> None:
    # GIVEN incompressible content cut in the middle of the deflate stream
    events = b"".join(b'{"id":"%s"}\n' % os.urandom(16).hex().encode() for _ in range(200))
    with pytest.raises(InputError, match="cannot read input"):
        read(gzip.compress(events)[:3000])


def test_invalid_utf8_lines_are_passed_on_for_validation_to_reject() -> None:
    assert [line.data for line in read(b'\xff\xfe{"a":1}\n{"b":2}\n')] == [b'\xff\xfe{"a":1}', b'{"b":2}']


def test_a_broken_first_line_of_a_large_ndjson_file_does_not_refuse_the_file() -> None:
    # GIVEN NDJSON far larger than the document limit whose first line is broken
    data = b'{"event_id": "broken\n' + b'{"a":1}\n' * 2000
    # WHEN read with a 1,000-byte document limit
    lines = read(data, total=100_000)
    # THEN the broken line is passed on alone and every other line follows
    assert lines[0] == Line(1, b'{"event_id": "broken', line=1)
    assert len(lines) == 2001


def test_an_array_on_the_first_line_followed_by_events_is_ndjson() -> None:
    lines = read(b'[1, 2]\n{"a":1}\n{"b":2}\n')
    assert [(line.position, line.data) for line in lines] == [(1, b"[1, 2]"), (2, b'{"a":1}'), (3, b'{"b":2}')]


BIG = 1_200  # above the 1,000-byte document limit these tests use


@pytest.mark.parametrize(
    "start",
    [
        b"{broken\n\n",  # a broken first line, then a blank one
        b"{broken\n{also broken\n",  # two broken lines
        b"{broken\n" + b'{"x":"' + b"y" * BIG + b'"}\n',  # a broken line, then one over every limit
        b'{"x":"' + b"y" * BIG + b'"}\n',  # a first line over the document limit
    ],
)
def test_large_ndjson_is_read_line_by_line_whatever_its_first_lines(start: bytes) -> None:
    # GIVEN NDJSON larger than the document limit, with awkward first lines
    data = start + b'{"a":1}\n' * 300
    # WHEN read
    lines = read(data, total=100_000)
    # THEN every good line arrives, each bad one alone
    assert [line.data for line in lines[-300:]] == [b'{"a":1}'] * 300
    assert len(lines) == 300 + sum(1 for part in start.split(b"\n") if part.strip())


@pytest.mark.parametrize(
    "data",
    [
        b'\n  \n[\n  {"a": 1},\n  {"b": 2}\n]\n',  # leading blank lines
        b'\xef\xbb\xbf[{"a": 1}, {"b": 2}]',  # a UTF-8 byte order mark
        b'[\n  {"a": 1}\n  , {"b": 2}\n]',  # comma-first
        b'{"events": [\n{"a": 1},\n{"b": 2}\n]}',
    ],
)
def test_documents_in_any_layout_yield_exactly_their_events(data: bytes) -> None:
    assert [line.data for line in read(data)] == [b'{"a": 1}', b'{"b": 2}']


def test_a_one_element_array_over_lines_is_one_event_not_three_lines() -> None:
    assert [line.data for line in read(b'[\n{"a": 1}\n]\n')] == [b'{"a": 1}']


def test_a_batch_document_over_the_limit_is_refused_even_after_blank_lines() -> None:
    with pytest.raises(InputTooLargeError, match="send NDJSON"):
        read(b'\n {"events": [' + b'{"a":1},' * 300 + b'{"a":1}]}')


def nested(depth: int) -> bytes:
    """A JSON value `depth` levels of arrays deep."""
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "document",
    [
        b'[{"a":1}, {"deep":' + nested(300) + b'}, {"c":3}]',
        b'{"events": [{"a":1}, {"deep":' + nested(300) + b'}, {"c":3}]}',
        b'[{"a":1}, ' + nested(300) + b', {"c":3}]',
    ],
    ids=["array", "events-object", "bare-array-item"],
)
def test_an_event_of_a_document_nested_too_deeply_is_refused_alone(document: bytes) -> None:
    # GIVEN a document whose second event is nested deeper than orjson writes (254 levels)
    # WHEN read (within every size limit)
    lines = read(document, event=10_000, document=10_000)
    # THEN the other events go on, and that one is refused with a problem that says why, no text kept
    assert [(line.position, line.data) for line in lines] == [(0, b'{"a":1}'), (1, None), (2, b'{"c":3}')]
    assert lines[1].problem is not None
    assert "nested deeper than 254 levels" in lines[1].problem
    assert lines[1].prefix == b""
    assert (lines[0].problem, lines[2].problem) == (None, None)


def test_a_single_event_nested_too_deeply_is_one_refused_line() -> None:
    lines = read(b'{"event_id": "e1", "deep": ' + nested(300) + b"}", event=10_000, document=10_000)
    assert [(line.position, line.data, line.problem is not None) for line in lines] == [(0, None, True)]


def test_an_event_254_levels_deep_is_read_and_255_is_refused() -> None:
    # GIVEN two events at the edge of what orjson writes back
    lines = read(b"[" + nested(254) + b"," + nested(255) + b"]", event=10_000, document=10_000)
    # THEN the first is an event as it was sent, the second is refused
    assert lines[0].data == nested(254)
    assert (lines[1].data, lines[1].problem is not None) == (None, True)


def test_an_event_over_the_size_limit_has_no_problem_text() -> None:
    # The refusal's message comes from the limit then (ingest.refusal), not from `problem`.
    (line,) = read(b'[{"big":"' + b"x" * 500 + b'"}]')
    assert (line.data, line.problem) == (None, None)
    assert line.prefix.startswith(b'{"big":"xxx')


@pytest.mark.parametrize(
    ("document", "events"),
    [
        pytest.param(b'[{"a": 1}, {"b": [1, {"c": "]},"}]}]', [b'{"a": 1}', b'{"b": [1, {"c": "]},"}]}'], id="array"),
        pytest.param(
            b'{"meta": {"events": [0]}, "events": [ {"n": 123456789012345678901234567890} ,\n {"s": "a\\"b"} ]}',
            [b'{"n": 123456789012345678901234567890}', b'{"s": "a\\"b"}'],
            id="events-object",
        ),
        pytest.param(b'{"\\u0065vents": [{"x": 1.10}]}', [b'{"x": 1.10}'], id="escaped-key"),
        pytest.param(b'[\n  {\n    "a": 1\n  }\n]', [b'{     "a": 1   }'], id="pretty-printed"),
        pytest.param(b'{"event_id": "e", "n": 1.50}', [b'{"event_id": "e", "n": 1.50}'], id="one-event"),
    ],
)
def test_a_documents_events_keep_the_text_they_were_sent_as(document: bytes, events: list[bytes]) -> None:
    # GIVEN a JSON document whose events are written in ways re-serialising would change
    # WHEN read THEN each event's text is the text sent (line breaks as spaces: one event a line)
    assert [line.data for line in read(document)] == events


# Inputs whose lines are decided at an edge: blank and whitespace-only lines, \r before the newline,
# lines at and around the event limit (100 bytes here), oversize blank lines, a BOM, no final newline,
# each document form, broken JSON, invalid UTF-8, deep nesting, an empty input, and `}` then `{` on the
# next line (which the in-memory reader takes for NDJSON without trying to parse one document).
EDGE_INPUTS = [
    b"",
    b"\n\n",
    b'{"a":1}',
    b'{"a":1}\r\n\n  \n{"b":2}\n{"c":3}',
    b'{"a":1}\r\r\n{"b":2}\r',
    b"\xef\xbb\xbf" + b'{"a":1}\n{"b":2}\n',
    b"\xef\xbb\xbf" + b'[{"a":1}, {"b":2}]',
    b'{"x":"' + b"y" * 92 + b'"}\n' + b'{"x":"' + b"y" * 93 + b'"}\n' + b'{"x":"' + b"y" * 91 + b'"}',
    b'{"x":"' + b"y" * 92 + b'"}\r\n{"x":"' + b"y" * 93 + b'"}',
    b'{"a":1}\n' + b" " * 500 + b"\n" + b"\t" * 150 + b'\n{"b":2}',
    b'{"big":"' + b"x" * 5000 + b'"}\n{"c":3}\n',
    b'{"big":"' + b"x" * 5000,
    b'[{"a":1}, {"b":2}]',
    b'{"events": [{"a":1}, {"b":2}]}',
    b'[\n  {"a": 1},\n  {"b": 2}\n]\n',
    b'{\n  "a": 1\n}\n',
    b'{"broken": \n{"b":2}\n',
    b'{"a":"\xff\xfe"}\n{"b":2}',
    b"[" * 300 + b"]" * 300,
    b'[{"a":1}]\n{"b":2}\n',
    b'"just a string"',
    b"x" * 900,
    # an object closed and another opened on the next line: never one document, so not parsed as one
    b'{"events": [{"a":1}\n{"b":2}]}',
    b'[{"a":1}\r\n{"b":2}]',
    b'{"a":"}\n{"}',
    b'{"a":"}\\n{"}\n{"b":2}',
]


@pytest.mark.parametrize("data", EDGE_INPUTS)
def test_an_input_in_memory_reads_as_the_same_lines_as_from_a_stream(data: bytes) -> None:
    # GIVEN an input read as a stream and the same bytes read in memory (a request's body)
    limits = {"max_event_bytes": 100, "max_total_bytes": 10_000, "max_document_bytes": 1_000}
    from_stream = list(iter_lines(io.BytesIO(data), **limits))
    in_memory = list(body_lines(data, **limits))
    # THEN both give the same lines: positions, texts, kept prefixes, problems and line numbers
    assert in_memory == from_stream

"""Reading a request body into candidate events (core/requests.py) and storing it as one batch
(`Ingestor.submit_request`): media types, gzip, documents and NDJSON, limits, and hostile input.

The local runtime runs each workflow synchronously, so after `submit_request` the batch is final and
the quarantine holds what the request left there.
"""

from __future__ import annotations

import gzip
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.core.errors import InputError
from eventpipe.core.model import BatchStatus, Limits, Rejection
from eventpipe.core.readers import KEPT_PREFIX_BYTES, InputTooLargeError
from eventpipe.core.requests import TooManyEventsError, UnsupportedMediaTypeError, request_lines, shape_reasons
from tests.conftest import make_event, ndjson

if TYPE_CHECKING:
    from eventpipe.core.model import BatchRecord
    from eventpipe.core.readers import Line
    from eventpipe.localrun.runtime import LocalRuntime

BATCH = "h0195f0a1b2c3d4e5f6a7b8c9d0"


def lines_of(body: bytes, content_type: str | None = None, encoding: str | None = None, **limits: int) -> list[Line]:
    return request_lines(body, content_type=content_type, content_encoding=encoding, limits=Limits(**limits))


def submit(
    runtime: LocalRuntime, body: bytes, content_type: str | None = None, encoding: str | None = None
) -> tuple[BatchRecord, list[dict[str, Any]], list[Rejection]]:
    """Read `body` as POST /events does, store and run it; the record, the 202's refusals and the quarantine."""
    lines = request_lines(body, content_type=content_type, content_encoding=encoding, limits=runtime.settings.limits)
    record, refused = runtime.ingestor.submit_request(lines, source="http", batch_id=BATCH)
    return record, refused, runtime.quarantine.for_batch(BATCH)


def assert_nothing_stored(runtime: LocalRuntime) -> None:
    assert list(runtime.bucket.keys("raw/")) == []
    assert runtime.batches.get(BATCH) is None
    assert runtime.quarantine.count() == 0


def codes(rejection: Rejection | dict[str, Any]) -> list[str]:
    """The reason codes of a quarantine record or of a refusal in the 202 answer."""
    if isinstance(rejection, Rejection):
        return [str(reason.code) for reason in rejection.reasons]
    return [str(reason["code"]) for reason in rejection["reasons"]]


# --- media types and encodings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "Application/Json ; Charset=UTF-8",
        "text/json",
        "; charset=utf-8",  # parameters only: no media type, as if absent
    ],
)
def test_a_json_document_is_read_whatever_the_spelling_of_its_type(
    runtime: LocalRuntime, content_type: str | None
) -> None:
    # GIVEN a JSON array of two events
    events = [make_event("page_view"), make_event("signup")]
    # WHEN it is read with that content type
    lines = lines_of(orjson.dumps(events), content_type)
    # THEN both events come out, numbered from 0 as a document's are
    assert [line.position for line in lines] == [0, 1]
    assert [orjson.loads(line.data or b"") for line in lines] == events
    # AND submitted, both are curated and the quarantine stays empty
    record, refused, quarantine = submit(runtime, orjson.dumps(events), content_type)
    assert (record.status, record.curated, refused, quarantine) == (BatchStatus.DONE, 2, [], [])


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/x-ndjson",
        "application/x-ndjson; charset=utf-8",
        "APPLICATION/X-NDJSON",
        "application/ndjson",
        "application/jsonlines",
        "application/x-jsonlines",
    ],
)
def test_ndjson_is_read_under_each_of_its_types(runtime: LocalRuntime, content_type: str | None) -> None:
    # GIVEN two events as NDJSON, WHEN they are read with that content type
    events = [make_event("page_view"), make_event("signup")]
    lines = lines_of(ndjson(*events), content_type)
    # THEN the events come out exactly as sent, numbered from 0, with their line numbers from 1
    assert [(line.position, line.line, line.data) for line in lines] == [
        (0, 1, orjson.dumps(events[0])),
        (1, 2, orjson.dumps(events[1])),
    ]
    # AND submitted, both are curated and the quarantine stays empty
    record, refused, quarantine = submit(runtime, ndjson(*events), content_type)
    assert (record.status, record.curated, refused, quarantine) == (BatchStatus.DONE, 2, [], [])


@pytest.mark.parametrize(
    "content_type",
    ["text/csv", "text/html", "application/xml", "multipart/form-data; boundary=x", "application/json-seq", "json"],
)
def test_other_media_types_are_unsupported(runtime: LocalRuntime, content_type: str) -> None:
    # GIVEN a valid body sent under a media type eventpipe does not read
    # WHEN it is read THEN UnsupportedMediaTypeError (415) says what to send instead, and nothing is stored
    with pytest.raises(UnsupportedMediaTypeError, match="application/x-ndjson"):
        submit(runtime, orjson.dumps([make_event()]), content_type)
    assert_nothing_stored(runtime)


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress", "gzip, br"])
def test_other_content_encodings_are_unsupported(encoding: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="encoding"):
        lines_of(orjson.dumps([make_event()]), "application/json", encoding)


@pytest.mark.parametrize("encoding", [None, "identity", "gzip", "GZIP", " gzip "])
def test_gzip_bodies_read_like_plain_ones(encoding: str | None) -> None:
    # GIVEN NDJSON, gzip-compressed unless the request says identity or nothing
    events = [make_event("page_view") for _ in range(3)]
    body = ndjson(*events)
    sent = gzip.compress(body) if encoding and encoding.strip().lower() == "gzip" else body
    # WHEN it is read THEN it gives the same lines as the plain body
    assert lines_of(sent, "application/x-ndjson", encoding) == lines_of(body, "application/x-ndjson")


def test_a_gzip_json_document_is_read(runtime: LocalRuntime) -> None:
    events = [make_event("page_view") for _ in range(3)]
    record, refused, quarantine = submit(runtime, gzip.compress(orjson.dumps(events)), "application/json", "gzip")
    assert (record.status, record.received, record.curated, refused, quarantine) == (BatchStatus.DONE, 3, 3, [], [])


def test_a_gzip_bomb_stops_at_the_body_limit(runtime: LocalRuntime) -> None:
    # GIVEN 10 KB of gzip that expands to 16 MiB, far past the 1 MiB body limit
    bomb = gzip.compress(b"\n" * (16 * 1024 * 1024))
    assert len(bomb) < runtime.settings.limits.max_body_bytes
    # WHEN it is read THEN reading stops at the limit with InputTooLargeError (413), and nothing is stored
    with pytest.raises(InputTooLargeError, match="limit"):
        submit(runtime, bomb, "application/x-ndjson", "gzip")
    assert_nothing_stored(runtime)


def test_the_body_limit_applies_to_the_decompressed_bytes_exactly() -> None:
    # GIVEN a limit of 4 KiB and NDJSON padded with blank lines to exactly the limit, and to one byte more
    event = orjson.dumps(make_event())
    exact = event + b"\n" * (4096 - len(event))
    # WHEN each is read gzip-compressed THEN the first is one event, the second is too large
    assert [line.data for line in lines_of(gzip.compress(exact), None, "gzip", max_body_bytes=4096)] == [event]
    with pytest.raises(InputTooLargeError):
        lines_of(gzip.compress(exact + b"\n"), None, "gzip", max_body_bytes=4096)


def test_a_compressed_body_over_the_limit_is_too_large_before_it_is_read() -> None:
    body = gzip.compress(bytes(range(256)) * 64, compresslevel=0)  # incompressible: bigger than 4 KiB compressed
    with pytest.raises(InputTooLargeError, match="body larger than 4096 bytes"):
        lines_of(body, None, "gzip", max_body_bytes=4096)


GOOD_GZIP = gzip.compress(ndjson(make_event(), make_event()))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x1f\x8b" + b"this is not deflate", id="bad-header"),
        pytest.param(GOOD_GZIP[:-8], id="no-trailer"),
        pytest.param(GOOD_GZIP[:12], id="cut-short"),
        pytest.param(GOOD_GZIP[:10] + b"\xff" * 10 + GOOD_GZIP[20:], id="corrupt-block"),
        pytest.param(b"\x1f\x8b", id="magic-only"),
    ],
)
def test_broken_gzip_is_an_input_error(runtime: LocalRuntime, body: bytes) -> None:
    # WHEN a broken gzip body is read THEN InputError (400), not "too large", and nothing is stored
    with pytest.raises(InputError, match="cannot read input") as caught:
        submit(runtime, body, "application/x-ndjson", "gzip")
    assert not isinstance(caught.value, InputTooLargeError)
    assert_nothing_stored(runtime)


# --- one JSON document or NDJSON -------------------------------------------------------------------


def test_each_document_form_numbers_its_events_from_zero() -> None:
    events = [make_event("page_view"), make_event("add_to_cart")]
    for body, count in [
        (orjson.dumps(events), 2),
        (orjson.dumps({"events": events}), 2),
        (orjson.dumps(events[0]), 1),  # one event on its own
        (b"\xef\xbb\xbf" + orjson.dumps(events), 2),  # a UTF-8 byte order mark is skipped
        (orjson.dumps(events, option=orjson.OPT_INDENT_2), 2),  # a document over several lines is still one
    ]:
        lines = lines_of(body, "application/json")
        assert [line.position for line in lines] == list(range(count))
        assert [orjson.loads(line.data or b"") for line in lines] == events[:count]


def test_ndjson_numbers_events_by_line_and_skips_blank_lines() -> None:
    # GIVEN NDJSON with CRLF endings, a blank line and a whitespace-only line
    first, second = orjson.dumps(make_event()), orjson.dumps(make_event())
    body = first + b"\r\n\r\n   \t\r\n" + second + b"\r\n"
    # WHEN it is read THEN the two events are numbered 0 and 1 and keep their line numbers, without line ends
    lines = lines_of(body, "application/x-ndjson")
    assert [(line.position, line.line, line.data) for line in lines] == [(0, 1, first), (1, 4, second)]


def test_ndjson_sent_as_application_json_is_refused(runtime: LocalRuntime) -> None:
    # GIVEN two events as NDJSON, labelled application/json
    body = ndjson(make_event(), make_event())
    # WHEN it is read THEN InputError (400) says to send it as NDJSON, and nothing is stored
    with pytest.raises(InputError, match=r"not one JSON document.*application/x-ndjson"):
        submit(runtime, body, "application/json; charset=utf-8")
    assert_nothing_stored(runtime)
    # AND the same body labelled NDJSON, or not labelled, is accepted
    assert len(lines_of(body, "application/x-ndjson")) == len(lines_of(body)) == 2


def test_a_truncated_json_document_is_refused_as_application_json() -> None:
    with pytest.raises(InputError, match="not one JSON document"):
        lines_of(b'{"events": [{"event_id": "x", "event_type": "y"}', "application/json")


# --- the event count limit ------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["document", "ndjson"])
def test_exactly_the_event_limit_passes_and_one_more_is_too_many(runtime: LocalRuntime, form: str) -> None:
    # GIVEN the runtime's limit of 50 events per batch
    limit = runtime.settings.limits.max_batch_events
    assert limit == 50
    events = [make_event("page_view") for _ in range(limit + 1)]

    def body(count: int) -> bytes:
        return orjson.dumps(events[:count]) if form == "document" else ndjson(*events[:count]) + b"\n\n"

    # WHEN one event more than the limit is sent THEN TooManyEventsError (413), and nothing is stored
    with pytest.raises(TooManyEventsError, match="more than 50 events"):
        submit(runtime, body(limit + 1))
    assert_nothing_stored(runtime)
    # WHEN exactly the limit is sent (blank lines do not count) THEN it is one batch, all of it curated
    record, refused, quarantine = submit(runtime, body(limit))
    assert (record.status, record.received, record.curated, refused, quarantine) == (BatchStatus.DONE, 50, 50, [], [])


def test_too_many_events_is_a_too_large_error() -> None:
    assert issubclass(TooManyEventsError, InputTooLargeError)  # answered 413, like the other size limits
    assert issubclass(UnsupportedMediaTypeError, InputError)
    assert not issubclass(UnsupportedMediaTypeError, InputTooLargeError)


# --- empty bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b" ", id="space"),
        pytest.param(b"\n\n\r\n\t  \n", id="blank-lines"),
        pytest.param(b"\n" * 100_000, id="many-blank-lines"),
        pytest.param(b"\xef\xbb\xbf", id="bom-only"),
        pytest.param(b"[]", id="empty-array"),
        pytest.param(b'{"events": []}', id="no-events"),
    ],
)
@pytest.mark.parametrize("content_type", [None, "application/json", "application/x-ndjson"])
def test_a_body_without_events_is_an_input_error(runtime: LocalRuntime, body: bytes, content_type: str | None) -> None:
    with pytest.raises(InputError) as caught:
        submit(runtime, body, content_type)
    assert not isinstance(caught.value, InputTooLargeError)
    assert_nothing_stored(runtime)


@pytest.mark.parametrize("content_type", [None, "application/x-ndjson"])
def test_a_whitespace_body_longer_than_one_event_is_an_input_error(
    runtime: LocalRuntime, content_type: str | None
) -> None:
    # GIVEN 70,000 spaces: no event, but longer than the 64 KiB an event may be
    # WHEN it is submitted THEN it is refused like any other blank body, and nothing is stored
    with pytest.raises(InputError):
        submit(runtime, b" " * 70_000, content_type)
    assert_nothing_stored(runtime)


# --- events over the size limit ----------------------------------------------------------------------


def big_event() -> dict[str, Any]:
    return make_event("page_view", properties={"path": "/p/" + "x" * (70 * 1024)})


def test_an_ndjson_event_over_the_size_limit_is_refused_with_its_line(runtime: LocalRuntime) -> None:
    # GIVEN three NDJSON lines, the second one over the 64 KiB event limit
    before, big, after = make_event(), big_event(), make_event()
    # WHEN the request is stored and run
    record, refused, quarantine = submit(runtime, ndjson(before, big, after), "application/x-ndjson")
    # THEN the big one is refused at ingest as too_large at its index (1) and line (2), the others are curated
    assert [(r["index"], r["line"], codes(r)) for r in refused] == [(1, 2, ["too_large"])]
    assert (record.received, record.curated, record.rejected, record.rejected_by_code) == (3, 2, 1, {"too_large": 1})
    # AND the quarantine keeps only its start, to look at (it cannot be replayed)
    (rejection,) = quarantine
    assert (rejection.index, rejection.stage, codes(rejection)) == (1, "ingest", ["too_large"])
    assert rejection.raw == orjson.dumps(big)[:KEPT_PREFIX_BYTES].decode()
    assert runtime.curated.count() == 2


def test_a_document_event_over_the_size_limit_is_refused_with_its_index(runtime: LocalRuntime) -> None:
    record, refused, quarantine = submit(runtime, orjson.dumps([make_event(), big_event()]), "application/json")
    assert [(r["index"], codes(r)) for r in refused] == [(1, ["too_large"])]
    assert [(q.index, q.stage, codes(q), len(q.raw)) for q in quarantine] == [(1, "ingest", ["too_large"], 1024)]
    assert (record.curated, record.rejected) == (1, 1)


# --- shape refusals ------------------------------------------------------------------------------------

VALID = make_event("page_view")
NO_ID = {k: v for k, v in make_event("page_view").items() if k != "event_id"}
NO_TYPE = {k: v for k, v in VALID.items() if k != "event_type"}
SHAPE_CASES = [
    # (line as sent, reason codes, paths, event_id kept)
    (b"[1, 2]", ["envelope_invalid"], ["$"], None),
    (b'"a string"', ["envelope_invalid"], ["$"], None),
    (b"42", ["envelope_invalid"], ["$"], None),
    (b"null", ["envelope_invalid"], ["$"], None),
    (b"{}", ["envelope_invalid", "envelope_invalid"], ["$.event_id", "$.event_type"], None),
    (orjson.dumps(NO_ID), ["envelope_invalid"], ["$.event_id"], None),
    (orjson.dumps({**VALID, "event_id": 12345}), ["envelope_invalid"], ["$.event_id"], None),
    (orjson.dumps({**VALID, "event_id": None}), ["envelope_invalid"], ["$.event_id"], None),
    (orjson.dumps(NO_TYPE), ["envelope_invalid"], ["$.event_type"], VALID["event_id"]),
    (orjson.dumps({**VALID, "event_type": ["page_view"]}), ["envelope_invalid"], ["$.event_type"], VALID["event_id"]),
    (b'{"event_id": "e-1",  "event_type": "page_view", ', ["malformed_json"], ["$"], None),
    (b"{not json at all", ["malformed_json"], ["$"], None),
]


@pytest.mark.parametrize(("line", "reason_codes", "paths", "event_id"), SHAPE_CASES)
def test_shape_reasons(line: bytes, reason_codes: list[str], paths: list[str], event_id: str | None) -> None:
    _, reasons = shape_reasons(line)
    assert [(r.code, r.path) for r in reasons] == list(zip(reason_codes, paths, strict=True))
    assert all(r.message for r in reasons)


def test_shape_reasons_accepts_any_object_with_string_id_and_type() -> None:
    # Ingest checks only the shape: an id that is not a UUID or an unknown type is for the workflow to refuse
    event, reasons = shape_reasons(b'{"event_id": "not-a-uuid", "event_type": "Not A Type"}')
    assert (event, reasons) == ({"event_id": "not-a-uuid", "event_type": "Not A Type"}, [])


def test_ndjson_shape_refusals_keep_the_whole_line_and_the_event_id(runtime: LocalRuntime) -> None:
    # GIVEN a valid event on line 1, then one line of each shape failure
    body = b"\n".join([orjson.dumps(VALID), *(case[0] for case in SHAPE_CASES)])
    # WHEN the request is stored and run
    record, refused, quarantine = submit(runtime, body, "application/x-ndjson")
    # THEN each failure is refused at ingest, at its index and line, with its reasons, its whole text and its
    # event_id if any
    expected = [(n, want, line.decode(), event_id) for n, (line, want, _, event_id) in enumerate(SHAPE_CASES, 1)]
    assert [(r["index"], codes(r), r["raw"], r.get("event_id")) for r in refused] == expected
    assert [r["line"] for r in refused] == [index + 1 for index, *_ in expected]
    # AND the quarantine holds the same, at stage "ingest", after the workflow ran
    assert [(q.index, codes(q), q.raw, q.event_id) for q in quarantine] == expected
    assert {q.stage for q in quarantine} == {"ingest"}
    # AND the valid event is curated; every event is accounted for once
    assert (record.status, record.received, record.curated, record.rejected) == (
        BatchStatus.DONE,
        1 + len(SHAPE_CASES),
        1,
        len(SHAPE_CASES),
    )


def test_document_shape_refusals_keep_the_whole_event(runtime: LocalRuntime) -> None:
    # GIVEN a JSON array: a valid event, an event without event_id, one with a numeric event_type, and a number
    bad_type = {**VALID, "event_id": "e-2", "event_type": 7}
    items: list[Any] = [make_event(), NO_ID, bad_type, 3]
    record, refused, quarantine = submit(runtime, orjson.dumps(items), "application/json")
    # THEN the three are refused at their 0-based index, each with the whole event as its text
    assert [(r["index"], r.get("event_id"), orjson.loads(r["raw"])) for r in refused] == [
        (1, None, NO_ID),
        (2, "e-2", bad_type),
        (3, None, 3),
    ]
    assert [(q.index, q.event_id, orjson.loads(q.raw)) for q in quarantine] == [
        (1, None, NO_ID),
        (2, "e-2", bad_type),
        (3, None, 3),
    ]
    assert (record.curated, record.rejected) == (1, 3)


def test_a_document_event_is_quarantined_with_its_original_text(runtime: LocalRuntime) -> None:
    # GIVEN a JSON array with one event refused for its shape that carries a 30-digit order number
    sent = b'[{"event_id": 1, "event_type": "purchase", "order": 123456789012345678901234567890}]'
    # WHEN it is stored and run
    _, refused, quarantine = submit(runtime, sent, "application/json")
    # THEN the quarantine keeps the number as it was sent
    assert "123456789012345678901234567890" in refused[0]["raw"]
    assert "123456789012345678901234567890" in quarantine[0].raw


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json\n{nope\n", id="two-broken-lines"),
        pytest.param(b"hello", id="a-word"),
        pytest.param(b"1" * 5000, id="5000-digit-number"),
        pytest.param(b'{"event_id": "e", "event_type": "x", "n": NaN}', id="nan"),
        pytest.param(b"\xff\xfe{\x00}\x00", id="utf-16"),
        pytest.param(b'["a"' + b" " * 10, id="truncated-array"),
    ],
)
def test_a_body_with_no_json_event_is_an_input_error_and_stores_nothing(runtime: LocalRuntime, body: bytes) -> None:
    # GIVEN a body in which not one line is JSON
    # WHEN it is submitted THEN InputError (400) and no raw object, batch record or quarantine record
    with pytest.raises(InputError, match="no JSON event"):
        submit(runtime, body)
    assert_nothing_stored(runtime)


# --- hostile text inside one line ------------------------------------------------------------------------


def with_value(raw_value: bytes) -> bytes:
    """A line that would be a valid event but for `raw_value` in its properties."""
    prefix = orjson.dumps({k: v for k, v in make_event("page_view").items() if k != "properties"})[:-1]
    return prefix + b',"properties":{"path":"/","title":' + raw_value + b"}}"


HOSTILE = [
    pytest.param(with_value(b'"\xff\xfe"'), id="invalid-utf8"),
    pytest.param(with_value(b'"\xc0\xaf"'), id="overlong-utf8"),
    pytest.param(with_value(b'"\xed\xa0\x80"'), id="encoded-lone-surrogate"),
    pytest.param(with_value(b'"\\ud800"'), id="escaped-lone-surrogate"),
    pytest.param(with_value(b'"\\udc00\\ud800"'), id="escaped-reversed-pair"),
    pytest.param(with_value(b"1" * 5000), id="5000-digit-integer"),
    pytest.param(with_value(b"1e400"), id="infinite-float"),
    pytest.param(with_value(b"NaN"), id="nan"),
    pytest.param(with_value(b"-Infinity"), id="infinity"),
    pytest.param(with_value(b"[" * 5000 + b"]" * 5000), id="nested-5000-deep"),
    pytest.param(with_value(b"\x00"), id="nul-byte"),
]


@pytest.mark.parametrize("line", HOSTILE)
def test_hostile_text_in_one_line_refuses_that_event_only(runtime: LocalRuntime, line: bytes) -> None:
    # GIVEN a valid event, then a line holding something no JSON parser should accept
    valid = make_event("page_view")
    # WHEN the request is stored and run
    record, refused, quarantine = submit(runtime, ndjson(valid, line), "application/x-ndjson")
    # THEN that line is refused as malformed JSON, the other is curated, and nothing raised
    assert [(r["index"], r["line"], codes(r)) for r in refused] == [(1, 2, ["malformed_json"])]
    assert (record.status, record.curated, record.rejected) == (BatchStatus.DONE, 1, 1)
    # AND the quarantine keeps the line as text, undecodable bytes escaped, so it can be read back
    (rejection,) = quarantine
    assert (rejection.index, rejection.stage, rejection.event_id) == (1, "ingest", None)
    assert rejection.raw == line.decode("utf-8", "backslashreplace")
    rejection.raw.encode("utf-8")  # valid text: no lone surrogate made it into the store


def test_an_escaped_surrogate_pair_is_valid_text(runtime: LocalRuntime) -> None:
    # GIVEN an event whose title is an emoji written as an escaped surrogate pair, THEN it is curated
    record, refused, _ = submit(runtime, with_value(b'"\\ud83d\\ude00"'), "application/x-ndjson")
    assert (record.curated, refused) == (1, [])


def test_a_30_digit_integer_is_read_not_refused(runtime: LocalRuntime) -> None:
    # GIVEN a valid event with a 30-digit integer in a member no schema checks
    body = with_value(b'"t"')[:-2] + b',"rank":123456789012345678901234567890}}'
    # WHEN it is submitted THEN it is curated (past 64 bits orjson reads an integer as a float)
    record, refused, _ = submit(runtime, body, "application/x-ndjson")
    assert (record.curated, refused) == (1, [])


@pytest.mark.parametrize(
    ("content_type", "outcome"),
    [(None, "too_large"), ("application/x-ndjson", "too_large"), ("application/json", "InputError")],
)
def test_a_hundred_thousand_open_brackets(runtime: LocalRuntime, content_type: str | None, outcome: str) -> None:
    # GIVEN 100,000 `[`: too deep for any parser, and longer than one event may be
    body = b"[" * 100_000
    # WHEN it is submitted
    if outcome == "InputError":
        # THEN as a JSON document it is not one: a 400, and nothing stored
        with pytest.raises(InputError, match="not one JSON document"):
            submit(runtime, body, content_type)
        assert_nothing_stored(runtime)
        return
    # THEN as NDJSON it is one line over the event limit, refused on its own, its start kept
    record, refused, quarantine = submit(runtime, body, content_type)
    assert [(r["index"], codes(r)) for r in refused] == [(0, ["too_large"])]
    assert [(q.index, codes(q), q.raw) for q in quarantine] == [(0, ["too_large"], "[" * KEPT_PREFIX_BYTES)]
    assert (record.status, record.received, record.rejected) == (BatchStatus.DONE, 1, 1)


def test_deep_nesting_within_the_event_limit_as_a_document(runtime: LocalRuntime) -> None:
    # GIVEN a JSON document 2,000 levels deep (orjson stops at 1,024), under every size limit
    body = b"[" * 2000 + b"]" * 2000
    # WHEN it is sent as application/json THEN it is a clean 400; unlabelled, a 400 as no event is JSON
    with pytest.raises(InputError, match="not one JSON document"):
        submit(runtime, body, "application/json")
    with pytest.raises(InputError, match="no JSON event"):
        submit(runtime, body)
    assert_nothing_stored(runtime)

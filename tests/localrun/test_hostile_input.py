"""Hostile bodies, encodings and query strings on every route of `eventpipe up`: each is answered
with a 4xx (or a 2xx where the route ignores what is wrong), never a 5xx, and the server lives on."""

from __future__ import annotations

import gzip
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from tests.conftest import make_event
from tests.localrun.api_client import call, exchange, health, wait_for
from tests.localrun.process_probe import alive
from tests.localrun.servers import up

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.localrun.server_harness import Server

INVOKE = "/2015-03-31/functions/ingest/invocations"
ROUTES = [
    ("POST", "/events"),
    ("GET", "/batches/x"),
    ("GET", "/insights"),
    ("GET", "/health"),
    ("GET", "/"),
    ("POST", INVOKE),
    ("GET", "/dashboard/rejections"),
    ("GET", "/no/such/path"),
    ("POST", "/no/such/path"),
]
ROUTE_IDS = [f"{method} {path}" for method, path in ROUTES]
BODY_LIMIT = 1024 * 1024  # EVENTPIPE_MAX_BODY_BYTES's default
OVER_EVERY_LIMIT = 7 * 1024 * 1024  # past the Invoke API's 6 MiB too


def _event_with(field: bytes) -> bytes:
    """A valid event's JSON with one more top-level field, given as raw JSON text."""
    return orjson.dumps(make_event())[:-1] + b', "extra": ' + field + b"}"


DEEP = 600  # within orjson.loads' depth limit (1024), past orjson.dumps' (254)
BODIES = {
    "malformed": b'{"event_id": ',
    "events-not-a-list": b'{"events": 5}',
    "list-of-numbers": b"[1,2]",
    "string": b'"x"',
    "null": b"null",
    "empty": b"",
    "whitespace": b" \n\t\r\n",
    "nul-bytes": b"\0" * 100,
    "nesting-100000": b"[" * 100_000,
    "nesting-100000-closed": b"[" * 100_000 + b"]" * 100_000,
    "objects-nested-100000": b'{"a":' * 100_000,
    "number-5000-digits": b"1" * 5000,
    "event-with-5000-digits": _event_with(b"9" * 5000),
    "event-with-huge-exponent": _event_with(b"1e999999"),
    "nan": b"NaN",
    "infinity-in-list": b"[Infinity, -Infinity]",
    "event-with-nan": _event_with(b"NaN"),
    "lone-surrogate-escaped": orjson.dumps(make_event())[:-1] + b', "s": "\\ud800"}',
    "lone-surrogate-raw": orjson.dumps(make_event())[:-1] + b', "s": "\xed\xa0\x80"}',
    "invalid-utf8": b'{"event_id": "\xff\xfe", "event_type": "page_view"}',
    "utf8-bom": b"\xef\xbb\xbf" + orjson.dumps(make_event()),
    "duplicate-keys": b'{"event_id": "a", "event_id": "b", "event_type": "x"}',
    "nesting-600": b"[" * DEEP + b"]" * DEEP,
    "event-nesting-600": _event_with(b"[" * DEEP + b"]" * DEEP),
}


def _cases() -> Iterator[Any]:
    for (method, path), route_id in zip(ROUTES, ROUTE_IDS, strict=True):
        for name, body in BODIES.items():
            yield pytest.param(method, path, body, id=f"{route_id}-{name}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with up(tmp_path_factory.mktemp("hostile") / "data") as running:
        yield running


@pytest.fixture(autouse=True)
def still_serving(server: Server) -> Iterator[None]:
    """After each test: the server process lives and answers /health."""
    yield
    assert alive(server.process.pid), b"".join(server.output).decode(errors="replace")[-3000:]
    assert health(server.url)["status"] == "ok"


def assert_not_5xx(status: int | None, detail: Any = "") -> None:
    assert status is not None, detail
    assert 200 <= status < 500, (status, detail)


@pytest.mark.parametrize(("method", "path", "body"), list(_cases()))
def test_a_hostile_json_body_is_never_a_5xx(server: Server, method: str, path: str, body: bytes) -> None:
    reply = call(server.url, method, path, body, {"content-type": "application/json"})
    assert_not_5xx(reply.status, reply.body[:300])
    if path == "/events":
        assert reply.status in (202, 400), reply  # each event refused alone (202), or the body as a whole


@pytest.mark.parametrize("name", list(BODIES))
@pytest.mark.parametrize("content_type", ["application/x-ndjson", None])
def test_a_hostile_events_body_of_any_type_is_202_or_400(server: Server, name: str, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    reply = call(server.url, "POST", "/events", BODIES[name], headers)
    assert reply.status in (202, 400), reply


@pytest.mark.parametrize("name", list(BODIES))
def test_a_hostile_gzip_events_body_is_202_or_400(server: Server, name: str) -> None:
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    reply = call(server.url, "POST", "/events", gzip.compress(BODIES[name]), headers)
    assert reply.status in (202, 400), reply


def test_a_deeply_nested_event_in_ndjson_is_rejected_alone(server: Server) -> None:
    # GIVEN NDJSON of one valid event and one whose extra field is nested 600 deep
    body = orjson.dumps(make_event()) + b"\n" + BODIES["event-nesting-600"] + b"\n"
    # WHEN posted
    reply = call(server.url, "POST", "/events", body, {"content-type": "application/x-ndjson"})
    assert reply.status == 202
    batch_id = reply.json()["batch_id"]
    # THEN the batch is done: the valid event curated, the deep one rejected
    document = wait_for(lambda: _finished(server, batch_id), what="the batch finished")
    assert (document["status"], document["curated"], document["rejected"]) == ("done", 1, 1)


def _finished(server: Server, batch_id: str) -> dict[str, Any] | None:
    document: dict[str, Any] = call(server.url, "GET", f"/batches/{batch_id}").json()
    return document if document["status"] != "pending" else None


def gzip_bomb() -> bytes:
    """256 MiB of zeros in about 256 KiB: concatenated gzip members."""
    member = gzip.compress(b"\0" * (8 * 1024 * 1024), compresslevel=9)
    return member * 32


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
def test_a_gzip_bomb_is_never_a_5xx(server: Server, method: str, path: str) -> None:
    bomb = gzip_bomb()
    assert len(bomb) < BODY_LIMIT
    reply = call(server.url, method, path, bomb, {"content-type": "application/json", "content-encoding": "gzip"})
    assert_not_5xx(reply.status, reply.body[:300])
    if path == "/events":
        assert reply.status == 413, reply


@pytest.mark.parametrize("encoding", ["br", "compress", "deflate", "gzip, gzip", "x-unknown", "\x00"])
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
def test_an_unknown_content_encoding_is_never_a_5xx(server: Server, method: str, path: str, encoding: str) -> None:
    body = orjson.dumps([make_event()])
    status, raw, _ = exchange(
        server.url,
        [
            f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n".encode()
            + f"content-encoding: {encoding}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        ],
    )
    assert_not_5xx(status, raw[:300])
    if path == "/events" and encoding != "\x00":  # a NUL in a header is a malformed request (400)
        assert status == 415, raw[:300]


IGNORE_BODY = ("/", "/dashboard/rejections")  # these GET routes answer without reading a body


def in_pieces(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
def test_a_body_over_the_limit_is_413(server: Server, method: str, path: str) -> None:
    body = b"[" + b" " * OVER_EVERY_LIMIT + b"]"
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n".encode()
    head += b"content-length: %d\r\n\r\n" % len(body)
    status, raw, _ = exchange(server.url, [head, *in_pieces(body)])
    assert status == (200 if path in IGNORE_BODY else 413), raw[:300]


def chunked(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
def test_a_chunked_body_over_the_limit_is_413(server: Server, method: str, path: str) -> None:
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n".encode()
    head += b"transfer-encoding: chunked\r\n\r\n"
    status, raw, _ = exchange(server.url, [head, *chunked(b"[" + b" " * OVER_EVERY_LIMIT + b"]")])
    assert status == (200 if path in IGNORE_BODY else 413), raw[:300]


def test_a_chunked_body_within_the_limit_is_read(server: Server) -> None:
    head = (
        b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    status, raw, _ = exchange(server.url, [head, *chunked(orjson.dumps([make_event()]), size=7)])
    assert status == 202, raw


INVALID_QUERIES = [
    "since=%ZZ",
    "since=99999-01-01",
    "since=2026-11-28",  # no offset
    "since=2026-11-28T05:00:00Z&since=2026-11-28T06:00:00Z",  # repeated: joined by a comma
    "since=2026-11-28T07:00:00Z&until=2026-11-28T06:00:00Z",
    "since=1900-01-01T00:00:00Z",
    "since=0001-01-01T00:00:00-23:59",
    "until=9999-12-31T23:59:59-23:59",
    "since=2000-01-01T00:00:00Z&until=2026-01-01T00:00:00Z",  # longer than the longest window
    "since=%ff%fe",
    "since=\\u0000",
    "since=" + "9" * 5000,
]


@pytest.mark.parametrize("query_string", INVALID_QUERIES)
def test_an_invalid_insights_window_is_400(server: Server, query_string: str) -> None:
    reply = call(server.url, "GET", f"/insights?{query_string}")
    assert reply.status == 400, reply
    assert reply.json()["error"] == "bad_request"


@pytest.mark.parametrize(
    "query_string",
    [
        "limit=abc",
        "limit=-5",
        "limit=0",
        "limit=99999",
        "limit=",
        "limit=%ZZ",
        "limit=1&limit=2",
        "limit=%C2%B2",
        "limit=" + "9" * 5000,
    ],
)
def test_an_odd_rejections_limit_is_never_a_5xx(server: Server, query_string: str) -> None:
    reply = call(server.url, "GET", f"/dashboard/rejections?{query_string}")
    assert reply.status == 200, reply
    assert len(reply.json()["rejections"]) <= 200


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("query_string", ["%ZZ=%ZZ", "a=\xff", "&&&==&", "x=" + "%00" * 1000])
def test_odd_query_strings_are_never_a_5xx(server: Server, method: str, path: str, query_string: str) -> None:
    request = (
        f"{method} {path}?{query_string} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    status, raw, _ = exchange(server.url, [request.encode("latin-1")])
    assert_not_5xx(status, raw[:300])


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/../../pyproject.toml",
        "/dashboard/%2e%2e/%2e%2e/pyproject.toml",
        "/dashboard/..%2f..%2fpyproject.toml",
        "/dashboard/vendor/../../../../etc/passwd",
        "/dashboard/static/index.html",
        "/dashboard/index.html%00.js",
    ],
)
def test_no_file_outside_the_dashboard_is_served(server: Server, path: str) -> None:
    status, raw, _ = exchange(
        server.url, [f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode()]
    )
    assert status == 404, raw[:300]

"""Hostile connections to `eventpipe up`: oversized or endless request heads, broken framing, a 1 GB
body announced and never sent, slowloris. Each is refused early (4xx or a closed connection, never a
5xx), costs the server no memory, and the server lives on."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

import pytest

from tests.localrun.api_client import address, as_ndjson, events, exchange, health, read_answer
from tests.localrun.process_probe import alive, rss_mib
from tests.localrun.servers import up

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.localrun.server_harness import Server

ROUTES = [
    ("POST", "/events"),
    ("GET", "/batches/x"),
    ("GET", "/insights"),
    ("GET", "/health"),
    ("GET", "/"),
    ("POST", "/2015-03-31/functions/ingest/invocations"),
    ("GET", "/no/such/path"),
]
ROUTE_IDS = [f"{method} {path}" for method, path in ROUTES]
HEAD_LIMIT = 16 * 1024  # localrun/protocol.py MAX_HEAD_BYTES
HEAD_TIMEOUT_S = 10.0  # localrun/protocol.py HEAD_TIMEOUT_S
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with up(tmp_path_factory.mktemp("connections") / "data") as running:
        yield running


@pytest.fixture(autouse=True)
def still_serving(server: Server) -> Iterator[None]:
    """After each test: the server process lives and answers /health."""
    yield
    assert alive(server.process.pid), b"".join(server.output).decode(errors="replace")[-3000:]
    assert health(server.url)["status"] == "ok"


def head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "host: 127.0.0.1", *lines, "", ""]).encode("latin-1")


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
def test_a_100_kb_header_is_431(server: Server, method: str, path: str) -> None:
    status, raw, _ = exchange(server.url, [head(method, path, "x-big: " + "a" * 100_000, "content-length: 0")])
    assert status == 431, raw[:300]


def test_many_small_headers_are_431(server: Server) -> None:
    lines = [f"x-h-{n}: v" for n in range(5000)]
    status, raw, _ = exchange(server.url, [head("GET", "/health", *lines)])
    assert status == 431, raw[:300]


def test_a_head_just_under_the_limit_is_served(server: Server) -> None:
    status, raw, _ = exchange(server.url, [head("GET", "/health", "x-big: " + "a" * (HEAD_LIMIT - 200))])
    assert status == 200, raw[:300]


def test_a_head_and_a_large_body_in_one_send_are_served(server: Server) -> None:
    # GIVEN a POST whose head and 60 KB body arrive in one read, as http.client sends them
    body = as_ndjson(events(100))
    request = head("POST", "/events", "content-type: application/x-ndjson", f"content-length: {len(body)}") + body
    # THEN only the head counts against the head limit: the batch is accepted
    status, raw, _ = exchange(server.url, [request])
    assert status == 202, raw[:300]


@pytest.mark.parametrize("path", ["/health?x=", "/" + "a" * 10, "/batches/"])
def test_a_100_kb_request_line_is_431(server: Server, path: str) -> None:
    status, raw, _ = exchange(server.url, [head("GET", path + "a" * 100_000)])
    assert status == 431, raw[:300]


@pytest.mark.parametrize("start", ["x-big: ", "x-" + "a" * 100], ids=["value", "name"])
def test_a_header_that_never_ends_is_refused_before_it_is_buffered(server: Server, start: str) -> None:
    # GIVEN a client that sends one header of 8 MiB and counting, without ever ending it
    before = rss_mib(server.process.pid)
    pieces = [head("GET", "/health")[:-2] + start.encode(), *[b"a" * (256 * 1024)] * 32]
    # WHEN it streams it
    status, raw, sent_all = exchange(server.url, pieces, timeout=3)
    # THEN the server refuses it once past the head limit, not after taking it all in
    assert status == 431 or not sent_all, (status, raw[:300], sent_all)
    assert rss_mib(server.process.pid) - before < 4


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
def test_a_1_gb_content_length_is_answered_at_once_and_never_buffered(server: Server, method: str, path: str) -> None:
    before = rss_mib(server.process.pid)
    with socket.create_connection(address(server.url), timeout=10) as sock:
        # GIVEN a request that announces 1 GB of body
        sock.sendall(head(method, path, "content-type: application/json", "content-length: 1000000000"))
        # THEN it is answered without waiting for the body: refused, or served by a route that reads none
        status, raw = read_answer(sock, timeout=5)
        assert status == (200 if path == "/" else 413), raw[:300]
        # AND what the client sends on is not kept
        try:
            for _ in range(64):
                sock.sendall(b" " * (256 * 1024))
        except OSError:  # refused and closed: the expected end for every route but the page
            pass
    assert rss_mib(server.process.pid) - before < 8


BROKEN = {
    "byte-ff-in-path": b"GET /\xff HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
    "nul-in-path": b"GET /he\x00alth HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
    "superscript-content-length": b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: \xb2\r\n\r\n",
    "negative-content-length": b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: -1\r\n\r\n",
    "huge-content-length": (
        b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 99999999999999999999999\r\n\r\n"
    ),
    "two-content-lengths": (
        b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab"
    ),
    "length-and-chunked": (
        b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "bad-chunk-size": b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    "unknown-transfer-encoding": b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: magic\r\n\r\n",
    "http-9.9": b"GET /health HTTP/9.9\r\nhost: 127.0.0.1\r\n\r\n",
    "http-0.9": b"GET /health\r\n\r\n",
    "unknown-method": b"BREW /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
    "only-newlines": b"\r\n\r\n\r\n\r\n",
    "bare-lf": b"GET /health HTTP/1.1\nhost: x\n\n",
    "header-without-colon": b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nbad header\r\n\r\n",
    "folded-header": b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-a: 1\r\n folded\r\n\r\n",
    "nul-in-header": b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-a: \x00\r\n\r\n",
    "binary-garbage": bytes(range(256)) * 4,
    "tls-hello": bytes.fromhex("16030100a5010000a103030000"),
    "upgrade-websocket": (
        b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    ),
    "h2c-upgrade": (
        b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: h2c\r\nconnection: upgrade, http2-settings\r\n\r\n"
    ),
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "pipelined": b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\nGET /nope HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
    "absolute-uri": b"GET http://elsewhere.example/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
    "asterisk": b"OPTIONS * HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_request_is_never_a_5xx(server: Server, request_bytes: bytes) -> None:
    status, raw, _ = exchange(server.url, [request_bytes], timeout=1.5)
    assert status is None or status < 500, raw[:300]


@pytest.mark.slow
def test_slowloris_connections_are_closed_after_the_head_timeout(server: Server) -> None:
    # GIVEN a client that connects and says nothing, and one that sends half a request head
    with (
        socket.create_connection(address(server.url), timeout=HEAD_TIMEOUT_S + 5) as silent,
        socket.create_connection(address(server.url), timeout=HEAD_TIMEOUT_S + 5) as slow,
    ):
        slow.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-a: ")
        started = time.monotonic()
        # WHEN they wait
        slow_status, slow_raw = read_answer(slow, timeout=HEAD_TIMEOUT_S + 3)
        silent_data = silent.recv(1024)
        waited = time.monotonic() - started
    # THEN the half head is answered 408 and the silent connection closed, both by the head timeout
    assert slow_status == 408, slow_raw
    assert silent_data == b""
    assert waited < HEAD_TIMEOUT_S + 5

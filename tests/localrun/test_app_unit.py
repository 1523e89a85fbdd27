"""localrun/app.py called as an ASGI application in-process: how it reads a body (limit, deadline, a
client gone), and what it refuses before reading one. No server, no socket: a fake `receive` plays
the client, so a stalled body takes half a second instead of the default thirty."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.localrun.app import LocalApp
from tests.conftest import make_event, ndjson

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from eventpipe.localrun.runtime import LocalRuntime

Message = dict[str, Any]
INVOKE = "/2015-03-31/functions/ingest/invocations"
TOKEN = "in-process-token"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(2, thread_name_prefix="test-app")
    yield pool
    pool.shutdown(wait=True)


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None, query: bytes = b"") -> Message:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers or [],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
        "http_version": "1.1",
        "scheme": "http",
    }


class Client:
    """The client side of one request: hands out body messages, records what the app sends."""

    def __init__(self, messages: list[Message], *, then_stall: bool = False) -> None:
        self._messages = list(messages)
        self._then_stall = then_stall
        self.receives = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        self.receives += 1
        if self._messages:
            return self._messages.pop(0)
        if self._then_stall:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(next(m["headers"] for m in self.sent if m["type"] == "http.response.start"))


def serve(app: LocalApp, request: Message, client: Client, *, within: float = 10.0) -> None:
    run: Callable[[], Awaitable[None]] = lambda: app(request, client.receive, client.send)  # noqa: E731
    asyncio.run(asyncio.wait_for(run(), within))


def body_message(data: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


def make_app(runtime: LocalRuntime, executor: ThreadPoolExecutor, **options: Any) -> LocalApp:
    return LocalApp(runtime, executor=executor, **options)


def test_a_body_that_stalls_is_408_after_the_body_timeout(runtime: LocalRuntime, executor: ThreadPoolExecutor) -> None:
    # GIVEN a client that announces 1000 bytes, sends 10, then nothing
    app = make_app(runtime, executor, body_timeout_s=0.5)
    client = Client([body_message(b"0123456789", more=True)], then_stall=True)
    request = scope("POST", "/events", [(b"content-type", b"application/x-ndjson"), (b"content-length", b"1000")])
    # WHEN the app reads it
    serve(app, request, client, within=5)
    # THEN it gives up with 408 and closes the connection
    assert client.status == 408
    assert orjson.loads(client.body)["error"] == "timeout"
    assert client.headers[b"connection"] == b"close"


@pytest.mark.parametrize("path", ["/events", INVOKE, "/insights"])
def test_a_declared_length_over_the_limit_is_413_before_reading(
    runtime: LocalRuntime, executor: ThreadPoolExecutor, path: str
) -> None:
    client = Client([body_message(b"x")])
    request = scope("POST" if path != "/insights" else "GET", path, [(b"content-length", b"1000000000")])
    serve(make_app(runtime, executor), request, client)
    assert client.status == 413
    assert client.receives == 0
    if path != INVOKE:  # the Invoke API answers in Lambda's own shape
        limit = runtime.settings.limits.max_body_bytes
        assert client.body == b'{"error":"too_large","message":"body larger than %d bytes"}' % limit


def test_a_body_in_pieces_past_the_limit_is_413_without_reading_on(
    runtime: LocalRuntime, executor: ThreadPoolExecutor
) -> None:
    # GIVEN a chunked body of endless 64 KiB pieces
    limit = runtime.settings.limits.max_body_bytes
    piece = b" " * 65536
    client = Client([body_message(piece, more=True) for _ in range(limit // len(piece) + 50)])
    # WHEN the app reads it
    serve(make_app(runtime, executor), scope("POST", "/events"), client)
    # THEN it stops at the first piece past the limit
    assert client.status == 413
    assert client.receives == limit // len(piece) + 1


def test_a_body_in_many_small_pieces_is_read_whole(runtime: LocalRuntime, executor: ThreadPoolExecutor) -> None:
    data = ndjson(make_event(), make_event())
    pieces = [body_message(data[i : i + 3], more=True) for i in range(0, len(data), 3)] + [body_message(b"")]
    client = Client(pieces)
    serve(make_app(runtime, executor), scope("POST", "/events", [(b"content-type", b"application/x-ndjson")]), client)
    assert client.status == 202
    assert orjson.loads(client.body)["received"] == 2


def test_a_client_gone_mid_body_gets_no_answer_and_nothing_is_stored(
    runtime: LocalRuntime, executor: ThreadPoolExecutor
) -> None:
    client = Client([body_message(b'{"event_id": ', more=True)])  # then http.disconnect
    serve(make_app(runtime, executor), scope("POST", "/events"), client)
    assert client.sent == []
    assert runtime.batches.unfinished_counts() == {"pending": 0, "failed": 0}
    assert list(runtime.bucket.keys("raw/")) == []


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/events"), ("POST", INVOKE), ("GET", "/insights"), ("GET", "/dashboard/rejections")]
)
def test_without_the_token_nothing_is_read(
    runtime: LocalRuntime, executor: ThreadPoolExecutor, method: str, path: str
) -> None:
    # GIVEN an app that requires a token, and a client without one
    client = Client([body_message(b"{}")])
    # WHEN it asks
    serve(make_app(runtime, executor, token=TOKEN), scope(method, path), client)
    # THEN it is 401 before its body is read
    assert client.status == 401
    assert client.receives == 0


def test_the_token_in_any_case_of_bearer_is_accepted(runtime: LocalRuntime, executor: ThreadPoolExecutor) -> None:
    client = Client([])
    headers = [(b"authorization", f"bEaReR {TOKEN}".encode())]
    serve(make_app(runtime, executor, token=TOKEN), scope("GET", "/dashboard/rejections", headers), client)
    assert client.status == 200


def test_health_needs_no_token(runtime: LocalRuntime, executor: ThreadPoolExecutor) -> None:
    client = Client([body_message(b"")])
    serve(make_app(runtime, executor, token=TOKEN), scope("GET", "/health"), client)
    assert client.status == 200
    assert orjson.loads(client.body)["status"] == "ok"


def test_answers_are_counted_by_class(runtime: LocalRuntime, executor: ThreadPoolExecutor) -> None:
    app = make_app(runtime, executor)
    for method, path in [("GET", "/health"), ("GET", "/nope"), ("GET", "/nope"), ("GET", "/")]:
        serve(app, scope(method, path), Client([body_message(b"")]))
    assert app.stats.as_dict()["responses"] == {"2xx": 2, "4xx": 2}


def test_every_answer_has_a_content_length(runtime: LocalRuntime, executor: ThreadPoolExecutor) -> None:
    app = make_app(runtime, executor)
    for method, path in [("GET", "/health"), ("GET", "/nope"), ("GET", "/"), ("POST", "/events")]:
        client = Client([body_message(b"")])
        serve(app, scope(method, path), client)
        assert int(client.headers[b"content-length"]) == len(client.body), (method, path)


def test_scopes_other_than_http_are_left_alone(runtime: LocalRuntime, executor: ThreadPoolExecutor) -> None:
    # the server runs with lifespan off and no websockets: anything else gets no answer
    client = Client([{"type": "lifespan.startup"}])
    serve(make_app(runtime, executor), {"type": "lifespan"}, client)
    assert (client.sent, client.receives) == ([], 0)


@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"evil.example")],  # a DNS name rebound to 127.0.0.1
        [(b"host", b"evil.example:8080")],
        [(b"host", b"127.0.0.1:8080"), (b"origin", b"https://evil.example")],  # a page of another site
        [(b"host", b"127.0.0.1:8080"), (b"origin", b"null")],
        [(b"host", b"localhost:8080"), (b"origin", b"http://127.0.0.1:8080")],
    ],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/events"), ("POST", INVOKE), ("GET", "/insights")])
def test_without_a_token_requests_from_other_sites_are_403(
    runtime: LocalRuntime, executor: ThreadPoolExecutor, headers: list[tuple[bytes, bytes]], method: str, path: str
) -> None:
    # GIVEN a server on loopback without a token, and a request a web page elsewhere made through the browser
    client = Client([body_message(ndjson([make_event()]))])
    # WHEN it arrives
    serve(make_app(runtime, executor), scope(method, path, headers), client)
    # THEN it is refused before its body is read, and nothing is stored
    assert client.status == 403, client.body
    assert client.receives == 0
    assert list(runtime.bucket.keys("raw/")) == []


@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"127.0.0.1:8080")],
        [(b"host", b"localhost:8080"), (b"origin", b"http://localhost:8080")],  # the dashboard itself
        [(b"host", b"[::1]:8080")],
        [],  # no Host: not a browser
    ],
)
def test_without_a_token_this_machine_is_served(
    runtime: LocalRuntime, executor: ThreadPoolExecutor, headers: list[tuple[bytes, bytes]]
) -> None:
    client = Client([body_message(ndjson([make_event()]))])
    headers = [*headers, (b"content-type", b"application/x-ndjson")]
    serve(make_app(runtime, executor), scope("POST", "/events", headers), client)
    assert client.status == 202, client.body


def test_with_a_token_any_host_is_served(runtime: LocalRuntime, executor: ThreadPoolExecutor) -> None:
    headers = [(b"host", b"eventpipe.internal:8080"), (b"authorization", f"Bearer {TOKEN}".encode())]
    client = Client([])
    serve(make_app(runtime, executor, token=TOKEN), scope("GET", "/dashboard/rejections", headers), client)
    assert client.status == 200


def test_an_event_invocation_is_answered_once_it_ran(runtime: LocalRuntime, executor: ThreadPoolExecutor) -> None:
    # GIVEN an asynchronous invocation of ingest
    payload = orjson.dumps({"events": [make_event()]})
    client = Client([body_message(payload)])
    headers = [(b"x-amz-invocation-type", b"Event")]
    # WHEN it is answered
    serve(make_app(runtime, executor), scope("POST", INVOKE, headers), client)
    # THEN its batch is stored already: a 202 is never an answer that a crash could take back
    assert client.status == 202
    assert len(list(runtime.bucket.keys("raw/"))) == 1

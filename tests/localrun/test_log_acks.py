"""`POST /events` answered on the server's event loop (localrun/log_acks.py): the 202 waits for the
request log's write, a failed write is the handler's 503, a large body is answered from a thread,
and no request's record can be too large for the log. In-process: the app with a real request log."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.adapters.local import SqliteAppStore, request_log
from eventpipe.adapters.local.request_log_reader import RequestLogReader
from eventpipe.core.apps import new_app
from eventpipe.core.model import Limits
from eventpipe.core.rawbatch import RawBatch
from eventpipe.handlers.ingest import handle_ingest
from eventpipe.localrun.apigw import http_api_event
from eventpipe.localrun.app import LocalApp
from eventpipe.localrun.log_acks import MAX_LOOP_BODY_BYTES
from eventpipe.localrun.runtime import REQUEST_LOG_FOLDER, LocalRuntime
from tests.conftest import make_event, ndjson

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eventpipe.settings import Settings

Message = dict[str, Any]
NDJSON = (b"content-type", b"application/x-ndjson")


@pytest.fixture
def server_runtime(settings: Settings) -> Iterator[LocalRuntime]:
    """A runtime as `eventpipe up`'s server has it: requests go to the request log."""
    rt = LocalRuntime(settings, defer_to=lambda: None, request_log=True)
    yield rt
    rt.close()


@pytest.fixture
def app(server_runtime: LocalRuntime) -> Iterator[LocalApp]:
    pool = ThreadPoolExecutor(2, thread_name_prefix="test-handler")
    yield LocalApp(server_runtime, executor=pool)
    pool.shutdown(wait=True)


class Exchange:
    """One request to the app: its body in one message, and what the app sends back."""

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.scope = {
            "type": "http",
            "method": "POST",
            "path": "/events",
            "query_string": b"",
            "headers": headers or [NDJSON],
            "client": ("127.0.0.1", 5000),
        }
        self._body = body
        self.sent: list[Message] = []

    async def run(self, app: LocalApp) -> None:
        async def receive() -> Message:
            return {"type": "http.request", "body": self._body, "more_body": False}

        async def send(message: Message) -> None:
            self.sent.append(message)

        await app(self.scope, receive, send)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def document(self) -> Any:
        return orjson.loads(self.sent[1]["body"])


@pytest.fixture
def held_fsync(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The request log's fsync held until the event returned is set (10 s at most)."""
    release = threading.Event()
    real_fsync = os.fsync

    def held(fd: int) -> None:
        release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(request_log.os, "fsync", held)
    return release


def logged(runtime: LocalRuntime) -> list[RawBatch]:
    reader = RequestLogReader(runtime.settings.data_dir / REQUEST_LOG_FOLDER, max_record_bytes=1 << 30)
    try:
        return [RawBatch.decode(record.data) for record in reader.read(1000)]
    finally:
        reader.close()


def test_the_202_is_sent_only_once_the_requests_record_is_fsynced(
    app: LocalApp, server_runtime: LocalRuntime, held_fsync: threading.Event
) -> None:
    release = held_fsync  # GIVEN a request log whose fsync is held until released
    exchange = Exchange(ndjson(make_event(), make_event()))

    async def scenario() -> list[Message]:
        task = asyncio.create_task(exchange.run(app))
        await asyncio.sleep(0.3)
        before = list(exchange.sent)  # WHEN the fsync has not returned
        release.set()
        await asyncio.wait_for(task, 10)
        return before

    # THEN nothing was answered before it returned, and 202 after
    assert asyncio.run(scenario()) == []
    assert exchange.status == 202
    # AND the request is in the log, under the batch id of its answer
    assert [raw.batch_id for raw in logged(server_runtime)] == [exchange.document["batch_id"]]


def test_requests_answered_together_share_writes_and_each_gets_its_own_202(
    app: LocalApp, server_runtime: LocalRuntime
) -> None:
    exchanges = [Exchange(ndjson(make_event())) for _ in range(20)]

    async def scenario() -> None:
        await asyncio.wait_for(asyncio.gather(*(exchange.run(app) for exchange in exchanges)), 10)

    asyncio.run(scenario())
    assert [exchange.status for exchange in exchanges] == [202] * 20
    ids = [exchange.document["batch_id"] for exchange in exchanges]
    assert sorted(raw.batch_id for raw in logged(server_runtime)) == sorted(ids)


def test_the_requests_of_one_loop_pass_go_to_the_log_together_and_share_one_app_read(
    app: LocalApp, server_runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a log and an app store that count their calls
    log = server_runtime.request_log
    assert log is not None
    handed: list[int] = []
    real_append_all, real_any_app = log.append_all, server_runtime.apps.store.any_app
    reads: list[bool] = []

    def append_all(bodies: list[bytes]) -> tuple[int, int]:
        handed.append(len(bodies))
        return real_append_all(bodies)

    def any_app() -> bool:
        reads.append(real_any_app())
        return reads[-1]

    monkeypatch.setattr(log, "append_all", append_all)
    monkeypatch.setattr(server_runtime.apps.store, "any_app", any_app)
    exchanges = [Exchange(ndjson(make_event())) for _ in range(20)]

    async def scenario() -> None:
        await asyncio.wait_for(asyncio.gather(*(exchange.run(app) for exchange in exchanges)), 10)

    # WHEN 20 keyless requests are answered in one pass of the loop
    asyncio.run(scenario())
    # THEN each gets its 202, their records were handed to the log at once, and the apps table read once
    assert [exchange.status for exchange in exchanges] == [202] * 20
    assert (handed, reads) == ([20], [False])
    # WHEN an app is created (by `eventpipe apps create`, say), then a keyless request comes
    SqliteAppStore(server_runtime.db).create(new_app("shop", now_ms=0)[0])
    later = Exchange(ndjson(make_event()))
    asyncio.run(later.run(app))
    # THEN its pass reads the table again: the new app counts at once
    assert later.status == 401
    assert reads == [False, True]


def test_a_client_gone_while_its_pass_is_written_leaves_the_others_of_the_pass_their_202(
    app: LocalApp, server_runtime: LocalRuntime, held_fsync: threading.Event
) -> None:
    release = held_fsync  # GIVEN a request log whose fsync is held until released
    gone, staying = Exchange(ndjson(make_event())), Exchange(ndjson(make_event()))

    async def scenario() -> None:
        tasks = [asyncio.create_task(gone.run(app)), asyncio.create_task(staying.run(app))]
        await asyncio.sleep(0.3)
        tasks[0].cancel()  # WHEN one request's task is cancelled while both wait for their write
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)

    asyncio.run(scenario())
    # THEN the other is answered 202 once written, and both records are in the log
    assert (gone.sent, staying.status) == ([], 202)
    assert len(logged(server_runtime)) == 2


def test_a_failed_write_is_the_handlers_503_with_cors_and_the_next_request_is_taken(
    app: LocalApp, server_runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a request log whose next write fails (a full disk)
    real_write = os.write
    calls: list[int] = []

    def failing_write(fd: int, data: bytes | memoryview) -> int:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(request_log.os, "write", failing_write)
    origin = (b"origin", b"https://shop.example")
    failed, after = Exchange(ndjson(make_event()), [NDJSON, origin]), Exchange(ndjson(make_event()), [NDJSON, origin])
    # WHEN a request is answered, then another
    asyncio.run(failed.run(app))
    asyncio.run(after.run(app))
    # THEN the first is 503, with the handler's body and its CORS headers, so a page's script reads why
    assert failed.status == 503
    assert failed.document == {"error": "unavailable", "message": "storage is unavailable; retry later"}
    assert failed.headers[b"access-control-allow-origin"] == b"https://shop.example"
    # AND the second is taken: 202, and only it is in the log
    assert after.status == 202
    assert [raw.batch_id for raw in logged(server_runtime)] == [after.document["batch_id"]]


def test_a_body_past_the_loops_bound_is_answered_from_a_thread_waiting_for_its_write(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a server runtime, and a body larger than the loop answers itself
    runtime = LocalRuntime(
        replace(settings, limits=Limits(max_batch_events=500)), defer_to=lambda: None, request_log=True
    )
    body = ndjson(*(make_event(properties={"pad": "x" * 400}) for _ in range(200)))
    assert len(body) > MAX_LOOP_BODY_BYTES
    log = runtime.request_log
    assert log is not None
    senders: list[tuple[str, str]] = []
    real_send, real_append_all = log.send, log.append_all

    def send(data: bytes) -> None:
        senders.append(("send", threading.current_thread().name))
        real_send(data)

    def append_all(bodies: list[bytes]) -> tuple[int, int]:
        senders.append(("append", threading.current_thread().name))
        return real_append_all(bodies)

    monkeypatch.setattr(log, "send", send)
    monkeypatch.setattr(log, "append_all", append_all)
    pool = ThreadPoolExecutor(1, thread_name_prefix="test-handler")
    try:
        exchange = Exchange(body)
        asyncio.run(exchange.run(LocalApp(runtime, executor=pool)))
        small = Exchange(ndjson(make_event()))
        asyncio.run(small.run(LocalApp(runtime, executor=pool)))
    finally:
        pool.shutdown(wait=True)
        runtime.close()
    # THEN the large one was sent from a handler thread, blocking until written; the small one appended on the loop
    assert (exchange.status, exchange.document["received"], small.status) == (202, 200, 202)
    assert senders == [("send", "test-handler_0"), ("append", "MainThread")]


HOSTILE_LINES = [
    b"{}",  # two shape reasons each
    b"1",
    b"x",
    b'{"event_id": 1, "event_type": 2}',
    b"\x01" * 200,  # escaped as \u0001: 6 bytes each
    b"\xff" * 200,  # escaped as \xff: 5 bytes each
    b"\x01" * 9000,  # past the event limit: its first KiB kept, escaped
    b'{"event_id": "' + b"\\u0001" * 1000 + b'"}',  # its id kept beside its text
]


@pytest.mark.parametrize("line", HOSTILE_LINES, ids=range(len(HOSTILE_LINES)))
def test_no_request_makes_a_record_too_large_for_the_log(settings: Settings, line: bytes) -> None:
    # GIVEN a body of as many copies of a refused line as the limits allow, beside one valid event
    limits = Limits(max_batch_events=500, max_body_bytes=64 * 1024, max_event_bytes=8 * 1024)
    runtime = LocalRuntime(replace(settings, limits=limits), defer_to=lambda: None, request_log=True)
    valid = orjson.dumps(make_event())
    copies = min(limits.max_batch_events - 1, (limits.max_body_bytes - len(valid)) // (len(line) + 1))
    body = b"\n".join([valid] + [line] * copies)
    user_agent = b"\x01" * 3000  # the request's facts: the longest user agent kept, escaped too
    event = http_api_event(
        method="POST",
        path="/events",
        query_string=b"",
        headers=[NDJSON, (b"user-agent", user_agent)],
        body=body,
        source_ip="2001:db8::1",
    )
    try:
        # WHEN it is taken
        answer = handle_ingest(event, runtime)
        # THEN it is in the log, not stored as a raw object of its own
        assert answer["statusCode"] == 202  # type: ignore[index]
        assert orjson.loads(answer["body"])["received"] == copies + 1  # type: ignore[index]
        assert len(logged(runtime)) == 1
        assert list(runtime.bucket.keys("raw/")) == []
    finally:
        runtime.close()


def test_past_the_pending_bound_a_post_is_429_with_retry_after_until_the_reader_catches_up(settings: Settings) -> None:
    # GIVEN a server runtime bounded at 1 MiB of requests not yet grouped, and nothing reading its log
    runtime = LocalRuntime(
        replace(settings, limits=Limits(max_batch_events=500), max_pending_mib=1),
        defer_to=lambda: None,
        request_log=True,
    )
    acks, log = runtime.log_acks, runtime.request_log
    assert acks is not None
    assert log is not None
    acks.grouped_before = lambda: 0
    body = ndjson(*(make_event(properties={"pad": "x" * 400}) for _ in range(100)))

    def post() -> dict[str, Any]:
        headers = [NDJSON, (b"origin", b"https://shop.example")]
        event = http_api_event(
            method="POST", path="/events", query_string=b"", headers=headers, body=body, source_ip="127.0.0.1"
        )
        return handle_ingest(event, runtime)  # type: ignore[return-value]

    try:
        # WHEN requests come until the log holds more than the bound
        answers = [post() for _ in range(40)]
        statuses = [answer["statusCode"] for answer in answers]
        taken = statuses.count(202)
        # THEN the first are taken, up to just past 1 MiB, and every later one is 429 busy
        assert 1 << 20 < log.bytes_from(0) < (1 << 20) + 2 * len(body)
        assert statuses == [202] * taken + [429] * (40 - taken)
        refused = answers[-1]
        assert refused["headers"]["retry-after"] == "1"
        assert refused["headers"]["access-control-allow-origin"] == "https://shop.example"
        assert orjson.loads(refused["body"])["error"] == "busy"
        # AND only the taken ones are in the log
        assert len(logged(runtime)) == taken
        # WHEN the reader has grouped all of them
        acks.grouped_before = lambda: log.next_seq
        # THEN requests are taken again
        assert post()["statusCode"] == 202
    finally:
        runtime.close()

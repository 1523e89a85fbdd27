"""A small client for the tests of `eventpipe up`: HTTP calls, raw-socket exchanges and bounded waits.

Every call has a timeout and every wait a deadline, so a server that hangs fails a test, never the run.
"""

from __future__ import annotations

import http.client
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import orjson

from tests.conftest import make_event, ndjson

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

T = TypeVar("T")
NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def call(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float = 30.0,
) -> Reply:
    """One request on a connection of its own."""
    connection = http.client.HTTPConnection(*address(url), timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def post_events(url: str, body: bytes, headers: Mapping[str, str] = NDJSON, *, timeout: float = 30.0) -> Reply:
    return call(url, "POST", "/events", body, headers, timeout=timeout)


def health(url: str) -> dict[str, Any]:
    reply = call(url, "GET", "/health", timeout=10)
    assert reply.status == 200, reply
    document: dict[str, Any] = reply.json()
    return document


def insights(url: str, query: str = "", headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    reply = call(url, "GET", f"/insights{query}", headers=headers, timeout=10)
    assert reply.status == 200, reply
    document: dict[str, Any] = reply.json()
    return document


def wait_for(check: Callable[[], T | None], *, what: str, timeout: float = 30.0, interval: float = 0.1) -> T:
    """Call `check` until it returns something other than None or False; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def batch_when_done(url: str, batch_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """GET /batches/{id} once its status is no longer pending."""

    def finished() -> dict[str, Any] | None:
        reply = call(url, "GET", f"/batches/{batch_id}", timeout=10)
        assert reply.status == 200, reply
        document: dict[str, Any] = reply.json()
        return document if document["status"] != "pending" else None

    return wait_for(finished, what=f"batch {batch_id} finished", timeout=timeout)


def wait_idle(url: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """/health once no batch is pending."""

    def idle() -> dict[str, Any] | None:
        document = health(url)
        return document if document["batches"]["pending"] == 0 else None

    return wait_for(idle, what="no batch pending", timeout=timeout)


def events(count: int, event_type: str = "page_view") -> list[dict[str, Any]]:
    """`count` valid events with fresh ids, stamped about now (see tests/localrun/conftest.py)."""
    return [make_event(event_type) for _ in range(count)]


def invalid_event() -> dict[str, Any]:
    """An event that passes ingest's shape check but fails its schema (rejected by the workflow)."""
    return make_event("add_to_cart", properties={"product_id": "p-1", "quantity": 0, "price": 1, "currency": "EUR"})


def shapeless_event() -> dict[str, Any]:
    """An event refused at ingest: no `event_id`."""
    event = make_event()
    del event["event_id"]
    return event


def as_ndjson(items: Iterable[Any]) -> bytes:
    return ndjson(*items)


def new_id() -> str:
    return str(uuid.uuid4())


def exchange(url: str, chunks: Iterable[bytes], *, timeout: float = 10.0) -> tuple[int | None, bytes, bool]:
    """Send raw bytes, stopping at the first send error (the server may refuse and close early), then
    read the answer. Returns its status (None when there is none), its bytes, and whether every
    chunk was sent."""
    with socket.create_connection(address(url), timeout=timeout) as sock:
        sent_all = True
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                sent_all = False
                break
        return (*read_answer(sock, timeout=timeout), sent_all)


def read_answer(sock: socket.socket, *, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """The status and raw bytes of the answer on `sock`, read until it is complete, closed, or `timeout`."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if _complete(data):
                break
    except OSError:  # reset, or timed out: what arrived is the answer
        pass
    if not data.startswith(b"HTTP/1."):
        return None, data
    return int(data.split(b" ", 2)[1]), data


def _complete(data: bytes) -> bool:
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return body.endswith(b"0\r\n\r\n")
    return False

"""localrun/protocol.py in-process: a client that stops reading an answer is dropped, one that reads
gets it all; a head's time counts from its first byte, on every request of a connection; a request
whose body has arrived whole is marked so. uvicorn runs in a thread with the guarded protocol and
short timeouts."""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

from eventpipe.localrun import protocol
from eventpipe.localrun.protocol import BODY_RECEIVED, GuardedHttpToolsProtocol

if TYPE_CHECKING:
    from collections.abc import Iterator

ANSWER = b"x" * (8 * 1024 * 1024)  # far more than the kernel buffers of both sides hold


async def large_answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", str(len(ANSWER)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


class BodyEcho:
    """Answers 200 with the body's length; notes, for each request, whether it came marked as whole."""

    def __init__(self) -> None:
        self.marked: list[bool] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.marked.append(bool(scope.get(BODY_RECEIVED)))
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(size).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})


def serve(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(protocol, "WRITE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(protocol, "HEAD_TIMEOUT_S", 0.5)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)  # accepted sockets inherit it
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    config = uvicorn.Config(app, http=GuardedHttpToolsProtocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    yield from serve(large_answer, monkeypatch)


@pytest.fixture
def echo() -> BodyEcho:
    return BodyEcho()


@pytest.fixture
def echo_port(echo: BodyEcho, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    yield from serve(echo, monkeypatch)


def request(port: int) -> socket.socket:
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    client.sendall(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    return client


def read_all(client: socket.socket, *, within: float) -> int:
    """Bytes read until the server closes (or `within` seconds pass)."""
    client.settimeout(within)
    total = 0
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            chunk = client.recv(1024 * 1024)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        total += len(chunk)
    return total


def test_a_client_that_stops_reading_is_dropped(port: int) -> None:
    # GIVEN a client that asks for a large answer, then reads nothing for longer than the write timeout
    with request(port) as client:
        time.sleep(2)
        # THEN the server has given up on it: what it reads now ends well short of the answer
        assert read_all(client, within=5) < len(ANSWER)


def test_a_client_that_reads_gets_the_whole_answer(port: int) -> None:
    with request(port) as client:
        assert read_all(client, within=10) > len(ANSWER)  # the head and the whole body


POST = b"POST /events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\n\r\n"


def answer(client: socket.socket, *, within: float = 5) -> bytes:
    """What the server sends until it closes or stops for half a second."""
    client.settimeout(0.5)
    data, deadline = b"", time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            chunk = client.recv(65536)
        except TimeoutError:
            if data:
                break
            continue
        if not chunk:
            break
        data += chunk
    return data


def trickle(client: socket.socket, data: bytes, *, every_s: float) -> None:
    """Send `data` a byte at a time, until the server answers or closes the connection: a byte sent after
    its close would make the kernel reset the connection, and the answer not read yet would be lost."""
    for byte in data:
        try:
            if select.select([client], [], [], 0)[0]:  # an answer, or the close, is waiting to be read
                return
            client.sendall(bytes([byte]))
        except (OSError, ValueError):  # ValueError: the test closed the socket (its descriptor is -1)
            return
        time.sleep(every_s)


def test_a_request_sent_whole_is_marked_and_one_whose_body_comes_later_is_not(echo_port: int, echo: BodyEcho) -> None:
    with socket.create_connection(("127.0.0.1", echo_port)) as client:
        client.sendall(POST + b"hello")
        assert answer(client).endswith(b"\r\n\r\n5")
        client.sendall(POST)
        time.sleep(0.2)  # the app has begun, and waits for the body
        client.sendall(b"hello")
        assert answer(client).endswith(b"\r\n\r\n5")
    assert echo.marked == [True, False]


@pytest.mark.parametrize("requests_before", [0, 1])
def test_a_head_that_trickles_is_408_after_the_head_timeout(echo_port: int, requests_before: int) -> None:
    # GIVEN a connection (fresh, or after an answered request) whose next head comes a byte every 0.1 s
    with socket.create_connection(("127.0.0.1", echo_port)) as client:
        for _ in range(requests_before):
            client.sendall(POST + b"hello")
            assert answer(client).endswith(b"5")
        started = time.monotonic()
        sender = threading.Thread(target=trickle, args=(client, POST * 4), kwargs={"every_s": 0.1}, daemon=True)
        sender.start()
        # THEN it is refused once HEAD_TIMEOUT_S (0.5 s) has passed since the head's first byte
        refused = answer(client, within=10)
        waited = time.monotonic() - started
    assert refused.startswith(b"HTTP/1.1 408 "), refused
    assert waited < 3


def test_a_head_in_several_parts_within_the_timeout_is_served(echo_port: int) -> None:
    with socket.create_connection(("127.0.0.1", echo_port)) as client:
        for part in (POST[:10], POST[10:30], POST[30:] + b"hel"):
            client.sendall(part)
            time.sleep(0.1)
        client.sendall(b"lo")
        assert answer(client).startswith(b"HTTP/1.1 200 ")

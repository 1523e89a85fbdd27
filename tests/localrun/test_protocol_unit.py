"""localrun/protocol.py in-process: a client that stops reading an answer is dropped, one that reads
gets it all. uvicorn runs in a thread with the guarded protocol and a short write timeout."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

from eventpipe.localrun import protocol
from eventpipe.localrun.protocol import GuardedHttpToolsProtocol

if TYPE_CHECKING:
    from collections.abc import Iterator

ANSWER = b"x" * (8 * 1024 * 1024)  # far more than the kernel buffers of both sides hold


async def large_answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", str(len(ANSWER)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(protocol, "WRITE_TIMEOUT_S", 0.5)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)  # accepted sockets inherit it
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    config = uvicorn.Config(large_answer, http=GuardedHttpToolsProtocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    sock.close()


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

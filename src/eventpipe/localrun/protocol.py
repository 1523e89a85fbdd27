"""uvicorn's httptools protocol with the two guards it lacks.

uvicorn times out idle keep-alive connections, but not a client that connects and then says
nothing or trickles its request line and headers (slowloris), and it keeps a request head of any
size in memory. Here a head must arrive within `HEAD_TIMEOUT_S` and stay under `MAX_HEAD_BYTES`
(431 otherwise); API Gateway's own cap on headers is 10 KB.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger(__name__)
MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0


class _HeadTooLargeError(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _began = False  # a request's first bytes arrived
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._began = 0, True
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        self._began = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        with contextlib.suppress(_HeadTooLargeError):  # httptools hands a callback's exception back
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a head refused with 431 gets no second answer
            super().send_400_response(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(b"431 Request Header Fields Too Large", f"request head larger than {MAX_HEAD_BYTES} bytes")
            raise _HeadTooLargeError

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._began:  # a request had begun: tell the client why
            self._refuse(b"408 Request Timeout", f"request head not received within {HEAD_TIMEOUT_S:g} s")
        elif not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: bytes, message: str) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        log.info("refused a request from %s: %s", self.client, message)
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, len(body), body)
        )
        self.transport.close()

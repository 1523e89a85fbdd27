"""uvicorn's httptools protocol with the guards it lacks.

uvicorn times out idle keep-alive connections, but not a client that connects and then says
nothing or trickles its request line and headers (slowloris), nor one that stops reading an answer
(the 4.8 MB chart library, say), and it keeps a request head of any size in memory. Here a head must
arrive within `HEAD_TIMEOUT_S` and stay under `MAX_HEAD_BYTES` (431 otherwise; API Gateway's own cap
on headers is 10 KB), and a connection whose answer has not moved for `WRITE_TIMEOUT_S` is dropped.

The head's timer is armed only when a read ends with a head begun and not complete: nearly every
request arrives whole in one read, and a timer armed and cancelled for each cost about 1% of a
10-event request. For the same reason a request whose body has arrived whole is marked in its scope
(`BODY_RECEIVED`): the app then reads it without a deadline, which could never fire.
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
WRITE_TIMEOUT_S = 30.0
# Set in a request's scope once its whole body has arrived: `receive()` returns it without waiting
BODY_RECEIVED = "eventpipe.body_received"


class _HeadTooLargeError(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0  # of the head being read, as the parser hands its parts over
    _raw_head_bytes = 0  # bytes received since the last complete head (the parser buffers a part)
    _awaiting_head = True
    _heads = 0  # complete heads so far
    _began = False  # a request's first bytes arrived
    _refused = False
    _write_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # the first request's bytes must come within the time too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._began = 0, True
        self._disarm_head_timer()  # the head's time counts from its first byte (`data_received` arms it)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        self._began, self._awaiting_head, self._raw_head_bytes = False, False, 0
        self._heads += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_head = True
        self.scope[BODY_RECEIVED] = True  # type: ignore[literal-required]
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        awaiting, heads = self._awaiting_head, self._heads
        with contextlib.suppress(_HeadTooLargeError):  # httptools hands a callback's exception back
            super().data_received(data)
        if awaiting and self._heads == heads:  # all of it is head: one endless header, say
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > MAX_HEAD_BYTES:
                self._refuse_large_head()
        if self._began and self._head_timer is None and not self._refused:  # a head still to come
            self._arm_head_timer()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a head refused with 431 gets no second answer
            super().send_400_response(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        self.resume_writing()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The client reads the answer slower than it is written: it has `WRITE_TIMEOUT_S` to catch up."""
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(WRITE_TIMEOUT_S, self._write_timed_out)

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().resume_writing()

    def _write_timed_out(self) -> None:
        self._write_timer = None
        log.info("dropped a connection from %s: its answer did not move for %g s", self.client, WRITE_TIMEOUT_S)
        self.transport.abort()  # close() would wait for the buffer to drain, which it never does

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse_large_head()
            raise _HeadTooLargeError

    def _refuse_large_head(self) -> None:
        self._refuse(b"431 Request Header Fields Too Large", f"request head larger than {MAX_HEAD_BYTES} bytes")

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

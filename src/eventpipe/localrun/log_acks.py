"""`POST /events` answered on the event loop, its 202 sent once the request log has the request on disk.

The ingest handler (the same as Lambda's) runs on the loop itself: handing each request to a thread
and back cost the server more CPU than the handler does. There, its `send` to the request log only
queues the record (`RequestLog.append`) and notes its number; the request then awaits the write
that puts it on disk, and a write wakes the loop once for every request it carries. A failed write
turns the answer into the handler's 503. Every request fits a record (`record_limit`), so the
handler never falls back to a raw object of its own, a blocking write. Called anywhere else (the
Invoke API's threads), `send` blocks until the record is durable, as the `RequestQueue` port says.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from eventpipe.core.errors import BusyError

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventpipe.adapters.local.request_log import RequestLog

T = TypeVar("T")
# A larger body is answered from a thread, which waits there for its write: the loop serves every
# connection, and a body this size already costs it about a millisecond of parsing.
MAX_LOOP_BODY_BYTES = 64 * 1024
RETRY_AFTER_S = 1  # a refused client's wait (Retry-After) while the log is over its bound
# The records queued by the handler call running in this context; None outside `LoopAcks.run`
_queued_here: ContextVar[list[int] | None] = ContextVar("eventpipe_queued_records", default=None)


class _Waiter:
    __slots__ = ("failed", "first", "future", "last")

    def __init__(self, records: list[int], future: asyncio.Future[bool]) -> None:
        self.first, self.last = records[0], records[-1]
        self.future = future
        self.failed = False


class LoopAcks:
    """The request log as the ingestor's queue in the server (see the module's docstring)."""

    def __init__(self, log: RequestLog, *, max_pending_bytes: int | None = None) -> None:
        self._log = log
        self.max_message_bytes = log.max_message_bytes
        # Backpressure: past this many bytes of the log not yet grouped, requests are refused (429)
        self._max_pending_bytes = max_pending_bytes
        self.grouped_before: Callable[[], int] = lambda: log.next_seq  # the reader's place: the server sets it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: deque[_Waiter] = deque()  # in the order of their records (one loop appends them)
        log.on_written = self._written

    def takes(self, body: bytes) -> bool:
        """Whether a request with this body is answered on the loop (see MAX_LOOP_BODY_BYTES)."""
        return len(body) <= MAX_LOOP_BODY_BYTES

    def send(self, body: bytes) -> None:
        if self._max_pending_bytes is not None:
            pending = self._log.bytes_from(self.grouped_before())
            if pending > self._max_pending_bytes:
                raise BusyError(
                    f"processing is behind: {pending >> 20} MiB of requests wait in the request log, more than"
                    f" EVENTPIPE_MAX_PENDING_MIB; retry in {RETRY_AFTER_S} s",
                    RETRY_AFTER_S,
                )
        queued = _queued_here.get()
        if queued is None:
            self._log.send(body)
        else:
            queued.append(self._log.append(body))

    def run(self, function: Callable[..., T], *args: Any) -> tuple[T, list[int]]:
        """`function(*args)` on the loop, its records queued and not waited for: its result, and the
        sequence numbers of the records to await with `durable` before answering."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # the first request (a test may run several loops, one after the other)
            self._loop, self._waiters = loop, deque()  # before a write can finish: `_written` needs it
        queued: list[int] = []
        token = _queued_here.set(queued)
        try:
            return function(*args), queued
        finally:
            _queued_here.reset(token)

    async def durable(self, records: list[int]) -> bool:
        """Once every one of `records` is on disk: True; False when a write of one of them failed."""
        if not records:
            return True
        assert self._loop is not None, "records come from run(), which binds the loop"
        waiter = _Waiter(records, self._loop.create_future())
        self._waiters.append(waiter)
        # A write that took them cannot have been settled yet: settling runs on this loop, after this.
        return await waiter.future

    def _written(self, first: int, end: int, failed: bool) -> None:
        """From the thread that wrote records `[first, end)`."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped, nobody waits
            loop.call_soon_threadsafe(self._settle, first, end, failed)

    def _settle(self, first: int, end: int, failed: bool) -> None:
        for waiter in self._waiters:
            if waiter.first >= end:
                break
            if failed and waiter.last >= first:
                waiter.failed = True
        while self._waiters and self._waiters[0].last < end:
            waiter = self._waiters.popleft()
            if not waiter.future.done():  # a client gone: its task was cancelled
                waiter.future.set_result(not waiter.failed)

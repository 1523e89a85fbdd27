"""`POST /events` answered on the event loop, its 202 sent once the request log has the request on disk.

The ingest handler (the same as Lambda's) runs on the loop itself: handing each request to a thread
and back cost the server more CPU than the handler does. There, its `send` to the request log only
keeps the record with the others of the same loop pass; once the pass is over they are handed to the
log together (`RequestLog.append_all`: one lock, one wake-up of the log's thread), and every request
of the pass awaits the one write that puts them on disk. Handing each record over alone woke the
log's thread once a request, and each wake-up took the GIL from the loop. A failed write turns the
answer into the handler's 503. Every request fits a record (`record_limit`), so the handler never
falls back to a raw object of its own, a blocking write. Called anywhere else (the Invoke API's
threads), `send` blocks until the record is durable, as the `RequestQueue` port says.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from eventpipe.core.errors import BusyError, StorageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventpipe.adapters.local.request_log import RequestLog

T = TypeVar("T")
# A larger body is answered from a thread, which waits there for its write: the loop serves every
# connection, and a body this size already costs it about a millisecond of parsing.
MAX_LOOP_BODY_BYTES = 64 * 1024
RETRY_AFTER_S = 1  # a refused client's wait (Retry-After) while the log is over its bound
# The pass the handler call running in this context queued its record in; None outside `LoopAcks.run`
_running_here: ContextVar[list[_Pass] | None] = ContextVar("eventpipe_loop_pass", default=None)


class _Pass:
    """The records queued in one pass of the loop, handed to the log together, and their requests'
    waits: each is told True once the records are on disk, False when their write failed."""

    __slots__ = ("bodies", "end", "size", "waiters", "written")

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.size = 0  # bytes of `bodies`
        self.end = 0  # the sequence number after theirs in the log, once handed over
        self.waiters: list[asyncio.Future[bool]] = []
        self.written: bool | None = None  # once settled

    def settle(self, written: bool) -> None:
        self.written = written
        for waiter in self.waiters:
            if not waiter.done():  # a client gone: its task was cancelled
                waiter.set_result(written)


class LoopAcks:
    """The request log as the ingestor's queue in the server (see the module's docstring)."""

    def __init__(self, log: RequestLog, *, max_pending_bytes: int | None = None) -> None:
        self._log = log
        self.max_message_bytes = log.max_message_bytes
        # Backpressure: past this many bytes of the log not yet grouped, requests are refused (429)
        self._max_pending_bytes = max_pending_bytes
        self.grouped_before: Callable[[], int] = lambda: log.next_seq  # the reader's place: the server sets it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pass: _Pass | None = None  # this loop pass's records, not handed over yet
        self._pending_at_pass = 0  # bytes of the log not yet grouped, read at the pass's first record
        self._waiting: deque[_Pass] = deque()  # handed over, not yet written; in the order of their records
        log.on_written = self._written

    def takes(self, body: bytes) -> bool:
        """Whether a request with this body is answered on the loop (see MAX_LOOP_BODY_BYTES)."""
        return len(body) <= MAX_LOOP_BODY_BYTES

    def send(self, body: bytes) -> None:
        here = _running_here.get()
        if here is None:
            self._refuse_past_bound(self._log.bytes_from(self.grouped_before()))
            self._log.send(body)
            return
        loop_pass = self._this_pass()
        if not loop_pass.bodies:  # the backlog, read once a pass: its records are counted on top
            self._pending_at_pass = self._log.bytes_from(self.grouped_before())
        self._refuse_past_bound(self._pending_at_pass + loop_pass.size)
        loop_pass.bodies.append(body)
        loop_pass.size += len(body)
        here.append(loop_pass)

    def current_pass(self) -> object | None:
        """The loop pass a request answered in `run` is part of; None elsewhere. Every request of a
        pass arrived before the pass began, so a store read once in it is as fresh for all of them
        as a read for each (the write-key check's, `AppDirectory.same_moment`)."""
        return self._this_pass() if _running_here.get() is not None else None

    def _this_pass(self) -> _Pass:
        loop_pass = self._pass
        if loop_pass is None:  # the pass's first request: the rest of the pass joins it
            assert self._loop is not None, "run() binds the loop"
            loop_pass = self._pass = _Pass()
            self._loop.call_soon(self._hand_over)  # runs once this pass is over
        return loop_pass

    def _refuse_past_bound(self, pending: int) -> None:
        if self._max_pending_bytes is not None and pending > self._max_pending_bytes:
            raise BusyError(
                f"processing is behind: {pending >> 20} MiB of requests wait in the request log, more than"
                f" EVENTPIPE_MAX_PENDING_MIB; retry in {RETRY_AFTER_S} s",
                RETRY_AFTER_S,
            )

    def run(self, function: Callable[..., T], *args: Any) -> tuple[T, _Pass | None]:
        """`function(*args)` on the loop, its records queued and not waited for: its result, and what
        to await with `durable` before answering (None when it queued nothing)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # the first request (a test may run several loops, one after the other)
            # before a write can finish: `_written` needs the loop
            self._loop, self._pass, self._waiting = loop, None, deque()
        queued: list[_Pass] = []
        token = _running_here.set(queued)
        try:
            return function(*args), queued[-1] if queued else None
        finally:
            _running_here.reset(token)

    async def durable(self, queued: _Pass | None) -> bool:
        """Once the records `run` queued are on disk: True; False when their write failed."""
        if queued is None:
            return True
        if queued.written is not None:
            return queued.written
        assert self._loop is not None, "run() binds the loop"
        waiter: asyncio.Future[bool] = self._loop.create_future()
        queued.waiters.append(waiter)
        return await waiter

    def _hand_over(self) -> None:
        """On the loop, once per pass that queued records: all of them to the log at once."""
        loop_pass, self._pass = self._pass, None
        if loop_pass is None or not loop_pass.bodies:
            return
        try:
            _, loop_pass.end = self._log.append_all(loop_pass.bodies)
        except StorageError:  # the log is closed: the server is stopping
            loop_pass.settle(False)
            return
        loop_pass.bodies = []
        # A write that took them cannot have been settled yet: settling runs on this loop, after this.
        self._waiting.append(loop_pass)

    def _written(self, first: int, end: int, failed: bool) -> None:
        """From the thread that wrote records `[first, end)`."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped, nobody waits
            loop.call_soon_threadsafe(self._settle, first, end, failed)

    def _settle(self, first: int, end: int, failed: bool) -> None:
        # A pass's records are queued together, so one write takes all of them (and the writes are
        # told in their order): the passes it ends are those it wrote.
        while self._waiting and self._waiting[0].end <= end:
            self._waiting.popleft().settle(not failed)

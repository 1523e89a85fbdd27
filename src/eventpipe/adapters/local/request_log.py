"""The request log of `eventpipe up`: an append-only file of acknowledged requests, group-committed.

The `RequestQueue` port on one machine, as the Firehose stream is on AWS. Each HTTP request's raw
batch is appended as one record; `send` returns only once the record is on disk (written and
fsynced), which is what makes the 202 true. Requests that arrive while a write is under way wait
and share the next one: one write and one fsync for all of them (group commit), instead of a file,
its fsync and its folder's fsync per request. The worker reads the log in order, groups the
requests into batches (localrun/logged_requests.py) and deletes a segment once every request in it
is recorded.

Layout: `<folder>/<first sequence number, 16 hex>-<created ms, 11 hex>.log`, in name order. A record
is its length and CRC-32 (little-endian u32 each), then its bytes. The writer never appends to a
segment it did not create: a crash may leave half a record at a segment's end, which is never
acknowledged; a reader skips it once a later segment exists (the writer made that one after its
last write to the earlier one, so the earlier one is complete but for a torn tail).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eventpipe.adapters.local.files import fsync_folder
from eventpipe.core.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from eventpipe.core.model import Limits

log = logging.getLogger(__name__)
FRAME = struct.Struct("<II")  # length, CRC-32 of the record
SUFFIX = ".log"
ROTATE_BYTES = 16 * 1024 * 1024  # a segment is deleted whole, once read: keep them small
PER_EVENT_BYTES = 512  # a refusal's reasons and numbers in a record's header, at most (record_limit)
ROTATE_AFTER_S = 5.0  # and short-lived, so that a quiet log does not keep requests grouped long ago
# The reader is told of new records at most this often (at once after a quiet spell): a wake-up per write
# made the worker go round its loop (a pending query, a read of the log) about 600 times a second at
# 1,000 10-event requests a second, for groups formed every 80 ms or more.
TELL_EVERY_S = 0.01


@dataclass(frozen=True, slots=True, order=True)
class Segment:
    """One file of the log: the sequence number of its first record, and when it was made."""

    first_seq: int
    created_ms: int

    @property
    def name(self) -> str:
        return f"{self.first_seq:016x}-{self.created_ms:011x}{SUFFIX}"

    @classmethod
    def parse(cls, name: str) -> Segment | None:
        stem, dot, suffix = name.rpartition(".")
        first, dash, created = stem.partition("-")
        if f"{dot}{suffix}" != SUFFIX or not dash or len(first) != 16 or len(created) != 11:
            return None
        try:
            return cls(int(first, 16), int(created, 16))
        except ValueError:
            return None


def segments(folder: Path) -> list[Segment]:
    """The log's segments, oldest first (files that are not segments are left alone)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StorageError(f"cannot list the request log {folder}: {exc}") from exc
    return sorted(s for name in names if (s := Segment.parse(name)) is not None)


def record_limit(limits: Limits) -> int:
    """The largest record a request can make, so that every request fits one: its raw batch's events (a
    body at most) and its header, whose refused events' text, JSON-escaped, is at most 6 bytes for each
    of theirs (`\\u0001`), their ids as large again once, and for each event at most `PER_EVENT_BYTES`
    more (its position, index, line and reasons), plus the request's facts."""
    return 8 * limits.max_body_bytes + PER_EVENT_BYTES * limits.max_batch_events + 64 * 1024


def frame(record: bytes) -> bytes:
    return FRAME.pack(len(record), zlib.crc32(record)) + record


def read_records(data: bytes, offset: int = 0) -> tuple[list[tuple[int, bytes]], int]:
    """The whole records in `data` from `offset`: `(end offset, record)` each, and where they stop
    (at the end, or at a record cut short or damaged)."""
    records = []
    while offset + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, offset)
        end = offset + FRAME.size + length
        if end > len(data):
            break
        record = data[offset + FRAME.size : end]
        if zlib.crc32(record) != crc:
            break
        records.append((end, record))
        offset = end
    return records, offset


class RequestLog:
    """The writing end (the server): `send` appends a record and returns once it is durable; `append`
    queues one without waiting, and `on_written` says when each write is on disk.

    Thread-safe. Records queued while a write is under way share the next one. The log's own thread
    writes what `append` queues; a caller of `send` that finds no write under way writes every record
    queued so far itself (no thread hop) and wakes the others. A failed write fails every record in it
    with `StorageError` (503: the client sends again) and starts a new segment, so that a half-written
    record is only ever at a segment's end.
    """

    def __init__(
        self,
        folder: Path,
        *,
        max_message_bytes: int,
        after_write: Callable[[], None] = lambda: None,
        rotate_bytes: int = ROTATE_BYTES,
        after_write_every_s: float = TELL_EVERY_S,
    ) -> None:
        self.folder = folder
        # Wakes the reader after a write; at most once per `after_write_every_s`, the log's thread
        # telling it of the writes in between once that time is over.
        self._after_write = after_write
        self._after_write_every_s = after_write_every_s
        self._told_at = -after_write_every_s
        self._tell_owed = False
        # Told `(first, end, failed)` of each write, from the thread that made it
        self.on_written: Callable[[int, int, bool], None] = lambda first, end, failed: None
        self.max_message_bytes = max_message_bytes
        self._rotate_bytes = rotate_bytes
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._queued_work = threading.Condition(lock)  # the log's thread waits on it for records
        self._queued: list[bytes] = []
        self._queued_seq = 0  # sequence number of the next record queued
        self._durable_seq = 0  # records before it are on disk
        self._failed: list[tuple[int, int]] = []  # [start, end) of records whose write failed
        self._writing = False
        self._closed = False
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._queued_seq = self._durable_seq = _next_seq(folder)
            self._bytes = sum((folder / s.name).stat().st_size for s in segments(folder))  # a last run's, unread
        except OSError as exc:
            raise StorageError(f"cannot use the request log {folder}: {exc}") from exc
        # (end seq, bytes written through it) of each write not yet read past (`bytes_from`)
        self._writes: deque[tuple[int, int]] = deque([(self._durable_seq, self._bytes)])
        self._read_bytes = 0
        self._fd = -1
        self._segment_bytes = 0
        self._opened_at = 0.0
        self._new_segment()
        self._writer = threading.Thread(target=self._write_while_open, name="eventpipe-request-log", daemon=True)
        self._writer.start()

    @property
    def next_seq(self) -> int:
        """The sequence number the next acknowledged record gets: how many the log has taken."""
        return self._durable_seq

    def send(self, body: bytes) -> None:
        """Append one record; once this returns it is on disk. `StorageError` if it could not be written."""
        with self._cond:
            mine = self._queue([frame(body)])
            while self._durable_seq <= mine:
                if self._writing:
                    self._cond.wait()
                    continue
                self._write_queued()
            if self._failed_at(mine):
                raise StorageError("the request log could not be written")

    def bytes_from(self, seq: int) -> int:
        """About how many bytes of records the log holds from sequence number `seq` on (counted by whole
        writes): what the reader, which has grouped every record before `seq`, has still to take."""
        with self._cond:
            while self._writes and self._writes[0][0] <= seq:
                self._read_bytes = self._writes.popleft()[1]
            return self._bytes - self._read_bytes

    def append(self, body: bytes) -> int:
        """Queue one record and return its sequence number at once; the log's thread writes it, and
        `on_written` tells when (a record is durable once a write without failure has passed it)."""
        return self.append_all([body])[0]

    def append_all(self, bodies: list[bytes]) -> tuple[int, int]:
        """`append` for several records at once, with one wake-up of the log's thread: the sequence
        numbers they get, `[first, end)`. They go to the disk in one write."""
        framed = [frame(body) for body in bodies]
        with self._cond:
            first = self._queue(framed)
            if not self._writing:
                self._queued_work.notify()
            return first, self._queued_seq

    def _queue(self, framed: list[bytes]) -> int:
        """Queue framed records (holding the condition); the sequence number of the first."""
        if self._closed:
            raise StorageError("the request log is closed")
        first = self._queued_seq
        self._queued_seq += len(framed)
        self._queued += framed
        return first

    def _failed_at(self, seq: int) -> bool:
        return any(start <= seq < end for start, end in self._failed)

    def _write_queued(self) -> None:
        """As the leader (holding the condition): write and fsync what is queued, the lock released meanwhile."""
        records, self._queued = self._queued, []
        start, end = self._durable_seq, self._queued_seq
        self._writing = True
        self._cond.release()
        failed = False
        data = b"".join(records)
        try:
            self._append(data, first_seq=start)
        except (OSError, StorageError):
            failed = True
        finally:
            self._cond.acquire()
            self._writing = False
        if failed:
            self._failed = [*self._failed[-15:], (start, end)]
            self._rotate_after_failure(end)
        else:
            self._bytes += len(data)
            self._writes.append((end, self._bytes))
        self._durable_seq = end
        self._cond.notify_all()
        if self._queued:  # queued meanwhile by `append`: the log's thread writes them next
            self._queued_work.notify()
        try:  # the log's thread must outlive a listener's bug: every later request waits on it
            self.on_written(start, end, failed)
        except Exception:
            log.exception("a listener of the request log failed")
        if not failed:
            self._tell_reader()

    def _tell_reader(self) -> None:
        """Call `after_write` now, or owe it to the log's thread until `after_write_every_s` has passed
        since the last call (holding the condition)."""
        if time.monotonic() - self._told_at < self._after_write_every_s:
            if not self._tell_owed:
                self._tell_owed = True
                self._queued_work.notify()  # the log's thread times the call owed
            return
        self._told_at, self._tell_owed = time.monotonic(), False
        try:
            self._after_write()
        except Exception:
            log.exception("a listener of the request log failed")

    def _append(self, data: bytes, *, first_seq: int) -> None:
        if self._fd < 0:  # a failed write closed the last one
            self._new_segment(first_seq)
        elif self._segment_bytes >= self._rotate_bytes or (
            self._segment_bytes and time.monotonic() - self._opened_at >= ROTATE_AFTER_S
        ):
            self._close_segment()
            self._new_segment(first_seq)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self._segment_bytes += len(data)

    def _rotate_after_failure(self, next_seq: int) -> None:
        """After a failed write the segment may end in half a record: the next records go to a new one.
        Records of the failed write that did reach the disk whole may still be processed (a 503 asks
        for a retry; the events' ids make the retry's copies duplicates)."""
        self._close_segment()
        try:
            self._new_segment(next_seq)
        except StorageError:
            self._fd = -1  # the next write fails too, and tries again

    def _new_segment(self, first_seq: int | None = None) -> None:
        segment = Segment(self._durable_seq if first_seq is None else first_seq, int(time.time() * 1000))
        path = self.folder / segment.name
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
            fsync_folder(self.folder)  # the segment's name is durable before any record in it is acknowledged
        except OSError as exc:
            raise StorageError(f"cannot start a request log segment {path}: {exc}") from exc
        self._segment_bytes = 0
        self._opened_at = time.monotonic()

    def _close_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _rotate_if_old(self) -> None:
        """Start a new segment when the current one holds records and has been written for
        `ROTATE_AFTER_S`: the reader then deletes the old one once it is read, so no request stays
        on disk long after it was grouped (erasure rewrites raw batches, not the log)."""
        if self._writing or not self._segment_bytes or time.monotonic() - self._opened_at < ROTATE_AFTER_S:
            return
        self._close_segment()
        try:
            self._new_segment(self._durable_seq)
        except StorageError:
            self._fd = -1  # the next write fails, and tries a new segment again

    def _write_while_open(self) -> None:
        """The log's thread: writes what `append` queues, and rotates a segment grown old."""
        with self._cond:
            while not self._closed:
                if self._queued and not self._writing:
                    self._write_queued()
                    continue
                wait_s = 1.0
                if self._tell_owed:
                    wait_s = self._told_at + self._after_write_every_s - time.monotonic()
                    if wait_s <= 0:
                        self._tell_reader()
                        continue
                if not self._queued_work.wait(wait_s):
                    self._rotate_if_old()

    def close(self) -> None:
        """Stop taking records; those queued are written first."""
        with self._cond:
            while self._queued or self._writing:
                if not self._writing:
                    self._write_queued()
                    continue
                self._cond.wait()
            self._closed = True
            if self._tell_owed:  # the reader's last records: it would find them at its next start anyway
                self._after_write_every_s = 0.0
                self._tell_reader()
            self._queued_work.notify()
            self._close_segment()
        self._writer.join()


def _next_seq(folder: Path) -> int:
    """The sequence number after the last whole record of the newest segment."""
    found = segments(folder)
    if not found:
        return 0
    last = found[-1]
    data = (folder / last.name).read_bytes()
    records, _ = read_records(data)
    return last.first_seq + len(records)

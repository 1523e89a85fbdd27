"""The reading end of the request log (adapters/local/request_log.py): the worker's, one reader only.

It hands out records in order, a few at a time, so that a backlog of any size costs memory for one
group only, and deletes a segment once it is read to its end and the caller has taken every record
of it (`release`): the records are then in a recorded group, and the group's raw batch holds them.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from eventpipe.adapters.local.request_log import FRAME, Segment, segments
from eventpipe.core.errors import StorageError

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    seq: int
    segment: Segment
    data: bytes


class RequestLogReader:
    def __init__(self, folder: Path, *, max_record_bytes: int, writer_gone: bool = False) -> None:
        self.folder = folder
        self._writer_gone = writer_gone  # no server writes (the caller holds the data directory's lock)
        self._max_record_bytes = max_record_bytes
        self._segment: Segment | None = None
        self._stream: IO[bytes] | None = None
        self._seq = 0  # of the next record to read
        self._read_whole: list[Segment] = []  # read to their end, not yet deleted

    @property
    def next_seq(self) -> int:
        """The sequence number of the next record not read yet."""
        return self._seq

    def read(self, limit: int) -> list[LoggedRecord]:
        """Up to `limit` records that follow the last one read; fewer when the log has no more yet."""
        records: list[LoggedRecord] = []
        while len(records) < limit:
            if self._stream is None and not self._open_next():
                break
            record = self._read_one()
            if record is not None:
                records.append(record)
                continue
            # At the end of what is written. A later segment means this one is finished: the writer made
            # it after its last write here, so one more read finds every record (a torn tail is no record).
            if not (self._writer_gone or self._later_exists()):
                break
            record = self._read_one()
            if record is not None:
                records.append(record)
                continue
            self._finish_segment()
        return records

    def release(self, pending_from: Segment | None) -> None:
        """Delete the segments read whole before `pending_from`, the segment of the oldest record the
        caller has not recorded yet (None: it has recorded every record read)."""
        for segment in list(self._read_whole):
            if pending_from is None or segment < pending_from:
                try:
                    os.unlink(self.folder / segment.name)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.error("request log segment %s not deleted (tried again later): %s", segment.name, exc)
                    continue
                self._read_whole.remove(segment)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _open_next(self) -> bool:
        found = [s for s in segments(self.folder) if self._segment is None or s > self._segment]
        if not found:
            return False
        self._segment = found[0]
        self._seq = self._segment.first_seq
        try:
            self._stream = open(self.folder / self._segment.name, "rb")  # noqa: SIM115 (kept open across reads)
        except FileNotFoundError:  # deleted meanwhile (by an earlier worker that got this far)
            self._stream = None
            return self._open_next()
        except OSError as exc:
            raise StorageError(f"cannot read the request log segment {self._segment.name}: {exc}") from exc
        return True

    def _later_exists(self) -> bool:
        return any(s > self._segment for s in segments(self.folder)) if self._segment else False

    def _read_one(self) -> LoggedRecord | None:
        """The next whole record, or None (the stream stays where that record would begin)."""
        assert self._stream is not None
        assert self._segment is not None
        stream = self._stream
        start = stream.tell()
        try:
            head = stream.read(FRAME.size)
            if len(head) == FRAME.size:
                length, crc = FRAME.unpack(head)
                if length <= self._max_record_bytes:
                    data = stream.read(length)
                    if len(data) == length and zlib.crc32(data) == crc:
                        self._seq += 1
                        return LoggedRecord(self._seq - 1, self._segment, data)
            stream.seek(start)
        except OSError as exc:
            raise StorageError(f"cannot read the request log segment {self._segment.name}: {exc}") from exc
        return None

    def _finish_segment(self) -> None:
        assert self._stream is not None
        assert self._segment is not None
        position = self._stream.tell()
        size = os.fstat(self._stream.fileno()).st_size
        if position != size:  # a crash cut its last record short (never acknowledged), or the disk damaged it
            name, skipped = self._segment.name, size - position
            log.warning("request log segment %s: %d bytes after its last whole record skipped", name, skipped)
        self._stream.close()
        self._stream = None
        self._read_whole.append(self._segment)

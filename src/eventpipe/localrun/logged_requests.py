"""The worker's side of the request log: requests become group batches (micro-batching, core/grouping.py).

The server appends each acknowledged request to the log (adapters/local/request_log.py) and records
nothing in SQLite, so its requests never wait for the worker's write lock. The worker reads the log
in order, at most one group's worth ahead, and once the oldest request has waited the batching
window (`EVENTPIPE_BATCH_WINDOW_MS`) or the requests hold `EVENTPIPE_GROUP_MAX_EVENTS` events, it:
1. writes the group's raw batch (durable, named after its members);
2. records the group (pending) and its members (grouped into it) in one transaction;
3. deletes the log segments whose every request is now in a recorded group.
A crash between any two of them loses nothing: a request already recorded is skipped when the log
is read again (a restarted worker reads it from its oldest segment), one that is not is grouped again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from eventpipe.adapters.local.request_log import record_limit
from eventpipe.adapters.local.request_log_reader import RequestLogReader
from eventpipe.core.grouping import merge
from eventpipe.core.model import BatchRecord, BatchStatus
from eventpipe.core.queued import GROUPABLE_SOURCE
from eventpipe.core.rawbatch import RawBatch, store_raw

if TYPE_CHECKING:
    from pathlib import Path

    from eventpipe.adapters.local.request_log_reader import LoggedRecord
    from eventpipe.localrun.runtime import LocalRuntime

log = logging.getLogger(__name__)
READ_AT_ONCE = 32  # records read between two checks of the events held


class LoggedRequests:
    """The requests read from the log and not yet in a recorded group, oldest first."""

    def __init__(
        self, runtime: LocalRuntime, folder: Path, *, max_events: int, window_ms: int, writer_gone: bool = False
    ) -> None:
        self._runtime = runtime
        self._max_events = max_events
        self._window_ms = window_ms
        limit = record_limit(runtime.settings.limits)
        self._reader = RequestLogReader(folder, max_record_bytes=limit, writer_gone=writer_gone)
        self._waiting: list[tuple[LoggedRecord, RawBatch | None]] = []
        self._events = 0

    @property
    def next_seq(self) -> int:
        """The sequence number of the oldest request not in a recorded group yet."""
        return self._waiting[0][0].seq if self._waiting else self._reader.next_seq

    def due_in_ms(self, now_ms: int) -> int | None:
        """Read what the log holds (up to one group); 0 when a group is due, the milliseconds until
        the oldest request's window closes, or None when no request waits."""
        while self._events < self._max_events and (records := self._reader.read(READ_AT_ONCE)):
            for record in records:
                raw = _decoded(record)
                self._waiting.append((record, raw))
                self._events += raw.received if raw else 0
        if not self._waiting:
            self._reader.release(None)  # a segment read to its end since the last group
            return None
        if self._events >= self._max_events:
            return 0
        oldest = min((raw.received_at_ms for _, raw in self._waiting if raw), default=now_ms)
        return max(0, oldest + self._window_ms - now_ms)

    def group(self) -> tuple[list[tuple[str, str]], list[RawBatch]]:
        """Group the oldest waiting requests that fit one group: the `(batch_id, raw_key)` to run (none
        when all of them were grouped before a crash), and the requests taken."""
        taken, events = 0, 0
        for _, raw in self._waiting:
            size = raw.received if raw else 0
            if taken and events + size > self._max_events:
                break
            taken += 1
            events += size
        requests = [raw for _, raw in self._waiting[:taken] if raw is not None]
        runs = self._record(requests)
        del self._waiting[:taken]
        self._events -= events
        self._reader.release(self._waiting[0][0].segment if self._waiting else None)
        return runs, requests

    def _record(self, requests: list[RawBatch]) -> list[tuple[str, str]]:
        batches = self._runtime.batches
        known = batches.known([raw.batch_id for raw in requests])
        fresh = [raw for raw in requests if raw.batch_id not in known]
        if not fresh:
            return []
        group, firsts = merge(fresh)
        record = store_raw(self._runtime.bucket, group)
        members = [
            BatchRecord(
                raw.batch_id,
                "",
                GROUPABLE_SOURCE,
                raw.received_at_ms,
                raw.received,
                status=BatchStatus.GROUPED,
                group_id=record.batch_id,
                first_index=first,
            )
            for raw, (_, first) in zip(fresh, firsts, strict=True)
        ]
        batches.record_group(record, members)
        return [(record.batch_id, record.raw_key)]

    def close(self) -> None:
        self._reader.close()


def _decoded(record: LoggedRecord) -> RawBatch | None:
    try:
        return RawBatch.decode(record.data)
    except (KeyError, TypeError, ValueError) as exc:  # the CRC matched: only a bug writes this
        log.error("request log record %d is not a request, skipped: %s", record.seq, exc)
        return None

"""The request log of `eventpipe up` (adapters/local/request_log.py): group commit, torn tails, segments."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

import pytest

from eventpipe.adapters.local import request_log
from eventpipe.adapters.local.request_log import RequestLog, Segment, frame, segments
from eventpipe.adapters.local.request_log_reader import RequestLogReader
from eventpipe.core.errors import StorageError

if TYPE_CHECKING:
    from pathlib import Path

LIMIT = 1024 * 1024


def read_all(folder: Path) -> list[bytes]:
    reader = RequestLogReader(folder, max_record_bytes=LIMIT)
    try:
        return [record.data for record in reader.read(10_000)]
    finally:
        reader.close()


def test_records_sent_from_many_threads_are_all_read_back_in_one_order(tmp_path: Path) -> None:
    # GIVEN a log and 8 threads sending 50 records each, counting the fsyncs
    fsyncs = []
    real_fsync = os.fsync
    log = RequestLog(tmp_path, max_message_bytes=LIMIT)

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    def sender(n: int) -> None:
        for i in range(50):
            log.send(f"thread {n} record {i}".encode())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(request_log.os, "fsync", counting_fsync)
        threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    log.close()
    # THEN every record is read back once, each thread's in its own order
    records = read_all(tmp_path)
    assert sorted(records) == sorted(f"thread {n} record {i}".encode() for n in range(8) for i in range(50))
    for n in range(8):
        mine = [r for r in records if r.startswith(f"thread {n} ".encode())]
        assert mine == [f"thread {n} record {i}".encode() for i in range(50)]
    # AND the log took them all, in at most one fsync per record
    assert log.next_seq == 400
    assert len(fsyncs) <= 400


def test_a_send_returns_only_after_its_record_is_fsynced(tmp_path: Path) -> None:
    # GIVEN a log whose fsync is held until released
    log = RequestLog(tmp_path, max_message_bytes=LIMIT)
    release = threading.Event()
    real_fsync = os.fsync
    returned = threading.Event()

    def held_fsync(fd: int) -> None:
        release.wait(10)
        real_fsync(fd)

    def send() -> None:
        log.send(b"one")
        returned.set()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(request_log.os, "fsync", held_fsync)
        thread = threading.Thread(target=send)
        thread.start()
        # WHEN the fsync has not returned
        # THEN neither has the send
        assert not returned.wait(0.3)
        release.set()
        thread.join(10)
    assert returned.is_set()
    log.close()


def test_a_failed_write_fails_its_senders_and_the_next_records_go_to_a_new_segment(tmp_path: Path) -> None:
    # GIVEN a log whose next write fails
    log = RequestLog(tmp_path, max_message_bytes=LIMIT)
    log.send(b"before")
    real_write = os.write
    calls = []

    def failing_write(fd: int, data: bytes | memoryview) -> int:
        calls.append(fd)
        if len(calls) == 1:
            real_write(fd, bytes(data)[:3])  # half a record reaches the disk
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(request_log.os, "write", failing_write)
        # WHEN a record is sent
        # THEN its sender gets StorageError (a 503)
        with pytest.raises(StorageError):
            log.send(b"failed")
        # AND the next record is written to a new segment
        log.send(b"after")
    log.close()
    assert len(segments(tmp_path)) == 2
    # AND a reader reads the record before and the one after, skipping the torn tail between them
    assert read_all(tmp_path) == [b"before", b"after"]


def test_a_torn_tail_is_skipped_once_a_later_segment_exists_and_waited_for_before(tmp_path: Path) -> None:
    # GIVEN a segment with one whole record and half of the next (a writer killed mid-write)
    first = Segment(0, 1)
    (tmp_path / first.name).write_bytes(frame(b"whole") + frame(b"cut short")[:7])
    reader = RequestLogReader(tmp_path, max_record_bytes=LIMIT)
    # WHEN it is the last segment: the whole record is read, the rest waited for
    assert [r.data for r in reader.read(10)] == [b"whole"]
    assert reader.read(10) == []
    # AND once a restarted writer has made a new segment, its records follow
    log = RequestLog(tmp_path, max_message_bytes=LIMIT)
    assert log.next_seq == 1  # the torn record was never acknowledged: it takes no number
    log.send(b"next")
    log.close()
    records = reader.read(10)
    assert [(r.seq, r.data) for r in records] == [(1, b"next")]
    reader.close()


def test_release_deletes_only_segments_read_whole_before_the_oldest_unrecorded_record(tmp_path: Path) -> None:
    # GIVEN five segments of one record each, the last one still written to
    log = RequestLog(tmp_path, max_message_bytes=LIMIT, rotate_bytes=1)
    for n in range(5):
        log.send(f"r{n}".encode())  # each write after the first starts a new segment
    reader = RequestLogReader(tmp_path, max_record_bytes=LIMIT)
    records = reader.read(10)
    assert [r.data for r in records] == [b"r0", b"r1", b"r2", b"r3", b"r4"]
    before = segments(tmp_path)
    # WHEN the records up to r2 are recorded (r3 and r4 are not)
    reader.release(records[3].segment)
    # THEN only the segments wholly before r3's are gone; the one being written stays
    after = segments(tmp_path)
    assert after == [s for s in before if s >= records[3].segment]
    assert records[4].segment in after
    reader.release(None)
    assert records[4].segment in segments(tmp_path)  # still the writer's
    log.close()
    reader.close()


def test_a_damaged_or_oversized_record_ends_its_segment_and_nothing_is_a_500(tmp_path: Path) -> None:
    # GIVEN a sealed segment whose second record's bytes do not match its CRC, and one claiming 4 GiB
    (tmp_path / Segment(0, 1).name).write_bytes(frame(b"good") + frame(b"damaged")[:-1] + b"X" + frame(b"lost"))
    (tmp_path / Segment(3, 2).name).write_bytes(b"\xff\xff\xff\xff\x00\x00\x00\x00" + b"x" * 10)
    (tmp_path / Segment(4, 3).name).write_bytes(frame(b"later"))
    (tmp_path / "notes.txt").write_text("not a segment")
    # WHEN read
    # THEN the reader keeps what it can prove whole, and goes on to the next segment
    assert read_all(tmp_path) == [b"good", b"later"]


@pytest.mark.parametrize("name", ["x.log", "0000000000000000.log", "00000000000000zz-00000000001.log", "a-b-c.log"])
def test_names_that_are_not_segments_are_ignored(name: str) -> None:
    assert Segment.parse(name) is None


def test_append_returns_at_once_and_the_logs_thread_writes_and_reports_it(tmp_path: Path) -> None:
    # GIVEN a log whose fsync is held until released, and a listener for its writes
    log = RequestLog(tmp_path, max_message_bytes=LIMIT)
    written: list[tuple[int, int, bool]] = []
    reported = threading.Event()

    def on_written(first: int, end: int, failed: bool) -> None:
        written.append((first, end, failed))
        reported.set()

    log.on_written = on_written
    release = threading.Event()
    real_fsync = os.fsync

    def held_fsync(fd: int) -> None:
        release.wait(10)
        real_fsync(fd)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(request_log.os, "fsync", held_fsync)
        # WHEN records are appended
        # THEN each gets its number at once, and no write is reported while the fsync is held
        assert [log.append(b"one"), log.append(b"two")] == [0, 1]
        assert not reported.wait(0.3)
        assert log.next_seq == 0
        release.set()
        assert reported.wait(10)
    # AND once it returns, the writes that took them are reported, and the records are on disk
    log.close()
    assert written[-1][1] == 2
    assert all(not failed for _, _, failed in written)
    assert read_all(tmp_path) == [b"one", b"two"]


def test_close_writes_what_is_queued_and_then_takes_nothing(tmp_path: Path) -> None:
    log = RequestLog(tmp_path, max_message_bytes=LIMIT)
    for n in range(100):
        log.append(f"r{n}".encode())
    log.close()
    assert read_all(tmp_path) == [f"r{n}".encode() for n in range(100)]
    with pytest.raises(StorageError):
        log.append(b"late")


def test_a_failing_listener_is_logged_and_the_log_goes_on_writing(tmp_path: Path) -> None:
    log = RequestLog(tmp_path, max_message_bytes=LIMIT)

    def broken(first: int, end: int, failed: bool) -> None:
        raise ValueError("a bug in a listener")

    log.on_written = broken
    for n, record in enumerate([b"one", b"two"], start=1):
        log.append(record)  # written by the log's thread alone: the second only if it outlived the first's listener
        deadline = time.monotonic() + 10
        while log.next_seq < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.next_seq == n
    log.close()
    assert read_all(tmp_path) == [b"one", b"two"]


def test_the_reader_is_told_at_once_after_a_quiet_spell_and_once_more_for_the_writes_in_between(
    tmp_path: Path,
) -> None:
    # GIVEN a log that tells its reader of new records at most every 3 s
    told: list[float] = []
    twice = threading.Event()

    def tell() -> None:
        told.append(time.monotonic())
        if len(told) == 2:
            twice.set()

    log = RequestLog(tmp_path, max_message_bytes=LIMIT, after_write=tell, after_write_every_s=3.0)
    try:
        # WHEN a record is sent: the reader is told at once, by the write that took it
        log.send(b"one")
        assert len(told) == 1
        # AND two more are sent, each in a write of its own
        log.send(b"two")
        log.send(b"three")
        # THEN the log's thread tells the reader of them once the interval is over: no record waits
        # unannounced, and the reader is not woken again before then
        assert twice.wait(10)
        assert told[1] - told[0] >= 3.0
    finally:
        log.close()
    assert len(told) == 2
    assert read_all(tmp_path) == [b"one", b"two", b"three"]


def test_a_failing_reader_wake_is_logged_and_the_log_goes_on_writing(tmp_path: Path) -> None:
    def broken() -> None:
        raise ValueError("a bug in the wake-up")

    log = RequestLog(tmp_path, max_message_bytes=LIMIT, after_write=broken, after_write_every_s=0.0)
    log.send(b"one")
    log.send(b"two")
    log.close()
    assert read_all(tmp_path) == [b"one", b"two"]

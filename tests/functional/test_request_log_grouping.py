"""The worker's side of the request log (localrun/logged_requests.py): requests become groups once,
whatever step a crash interrupts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import pytest

from eventpipe.core.batch_ids import queued_batch_id
from eventpipe.core.model import BatchStatus
from eventpipe.core.rawbatch import RawBatch
from eventpipe.localrun.logged_requests import LoggedRequests
from eventpipe.localrun.runtime import REQUEST_LOG_FOLDER, LocalRuntime
from tests.conftest import NOW_MS, FixedClock, make_event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eventpipe.settings import Settings


class Crash(BaseException):
    """Stands for the worker dying: nothing in the pipeline catches it."""


@pytest.fixture
def server(settings: Settings) -> Iterator[LocalRuntime]:
    """The server's runtime: its requests go to the request log."""
    runtime = LocalRuntime(settings, clock=FixedClock(), defer_to=lambda: None, request_log=True)
    yield runtime
    runtime.close()


def send_requests(server: LocalRuntime, count: int, events: int = 10) -> list[str]:
    assert server.request_log is not None
    ids = []
    for n in range(count):
        raw = RawBatch(queued_batch_id(NOW_MS + n, events), "http", NOW_MS + n)
        raw.events = [orjson.dumps(make_event()) for _ in range(events)]
        raw.positions = list(range(events))
        server.request_log.send(raw.encode())
        ids.append(raw.batch_id)
    return ids


def worker_side(settings: Settings, *, max_events: int = 2000) -> tuple[LocalRuntime, LoggedRequests]:
    runtime = LocalRuntime(settings, clock=FixedClock(), defer_to=lambda: None)
    logged = LoggedRequests(runtime, settings.data_dir / REQUEST_LOG_FOLDER, max_events=max_events, window_ms=0)
    return runtime, logged


def test_logged_requests_become_one_group_whose_members_are_recorded_grouped(
    server: LocalRuntime, settings: Settings
) -> None:
    # GIVEN five requests in the log
    ids = send_requests(server, 5)
    runtime, logged = worker_side(settings)
    # WHEN the worker groups them and runs the group
    assert logged.due_in_ms(NOW_MS + 10) == 0
    runs, taken = logged.group()
    runtime.run_group(runs)
    # THEN one group ran, every request is grouped into it, and its 50 events are curated
    assert len(runs) == 1
    assert [raw.batch_id for raw in taken] == ids
    for batch_id in ids:
        record = runtime.batches.get(batch_id)
        assert record is not None
        assert (record.status, record.group_id) == (BatchStatus.GROUPED, runs[0][0])
    assert runtime.curated.count_by_type() == {"page_view": 50}
    assert logged.next_seq == 5
    logged.close()
    runtime.close()


def test_a_group_is_cut_at_the_most_events_and_the_rest_waits(server: LocalRuntime, settings: Settings) -> None:
    # GIVEN 7 requests of 10 events and groups of at most 30 events
    send_requests(server, 7)
    runtime, logged = worker_side(settings, max_events=30)
    # WHEN grouped until none is due
    sizes = []
    while logged.due_in_ms(NOW_MS + 10) == 0:
        runs, taken = logged.group()
        runtime.run_group(runs)
        sizes.append(sum(raw.received for raw in taken))
    # THEN groups of 30, 30 and the last 10
    assert sizes == [30, 30, 10]
    assert runtime.curated.count_by_type() == {"page_view": 70}
    logged.close()
    runtime.close()


@pytest.mark.parametrize("crash_at", ["after the raw batch", "after the record", "before the segments go"])
def test_a_worker_crash_at_any_step_then_a_new_worker_groups_each_request_once(
    server: LocalRuntime, settings: Settings, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    # GIVEN requests in the log, and a worker that dies at one step of forming their group
    ids = send_requests(server, 4)
    runtime, logged = worker_side(settings)
    assert logged.due_in_ms(NOW_MS + 10) == 0

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash

    if crash_at == "after the raw batch":
        monkeypatch.setattr(runtime.batches, "record_group", crash)
    elif crash_at == "after the record":
        real = runtime.batches.record_group

        def record_then_crash(*args: object) -> None:
            real(*args)  # type: ignore[arg-type]
            raise Crash

        monkeypatch.setattr(runtime.batches, "record_group", record_then_crash)
    else:
        monkeypatch.setattr(logged._reader, "release", crash)
    with pytest.raises(Crash):
        logged.group()
    logged.close()
    runtime.close()
    # WHEN a new worker reads the log from its start, then runs what is pending
    runtime, logged = worker_side(settings)
    while logged.due_in_ms(NOW_MS + 10) == 0:
        runtime.run_group(logged.group()[0])
    for record in runtime.batches.pending(100):  # a group recorded before the crash: the worker runs it so
        runtime.run_group([(record.batch_id, record.raw_key)])
    # THEN every request is in exactly one group, done, and each event is curated once
    groups = set()
    for batch_id in ids:
        record = runtime.batches.get(batch_id)
        assert record is not None
        assert record.status is BatchStatus.GROUPED
        groups.add(record.group_id)
    assert len(groups) == 1
    group = runtime.batches.get(groups.pop() or "")
    assert group is not None
    assert group.status is BatchStatus.DONE
    assert runtime.curated.count_by_type() == {"page_view": 40}
    assert runtime.batches.unfinished_counts() == {"pending": 0, "failed": 0}
    logged.close()
    runtime.close()


def test_read_segments_are_deleted_once_their_requests_are_grouped(server: LocalRuntime, settings: Settings) -> None:
    # GIVEN requests in two segments (the server started a new one between them)
    assert server.request_log is not None
    send_requests(server, 2)
    server.request_log._close_segment()
    server.request_log._new_segment()
    send_requests(server, 2)
    folder = settings.data_dir / REQUEST_LOG_FOLDER
    assert len(list(folder.iterdir())) == 2
    runtime, logged = worker_side(settings)
    # WHEN they are grouped
    assert logged.due_in_ms(NOW_MS + 10) == 0
    runtime.run_group(logged.group()[0])
    # THEN the first segment is gone, the one the server writes to stays
    assert len(list(folder.iterdir())) == 1
    logged.close()
    runtime.close()


def test_a_group_raw_batch_no_record_names_is_deleted_and_a_recorded_one_kept(
    server: LocalRuntime, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker that died after writing a group's raw batch, before recording the group
    send_requests(server, 3)
    runtime, logged = worker_side(settings)
    assert logged.due_in_ms(NOW_MS + 10) == 0

    def crash(*args: object) -> None:
        raise Crash

    monkeypatch.setattr(runtime.batches, "record_group", crash)
    with pytest.raises(Crash):
        logged.group()
    logged.close()
    runtime.close()
    (left,) = runtime.bucket.keys("raw/g")
    # AND two more requests, so that the group formed again takes five and has another name
    send_requests(server, 2)
    # WHEN a new worker removes what no record names, then groups the log
    runtime, logged = worker_side(settings)
    assert runtime.remove_unrecorded_groups() == 1
    assert logged.due_in_ms(NOW_MS + 10) == 0
    runs, taken = logged.group()
    # THEN only the recorded group's raw batch is left, with all five requests, and a second sweep keeps it
    assert len(taken) == 5
    assert list(runtime.bucket.keys("raw/g")) == [runs[0][1]] != [left]
    assert runtime.remove_unrecorded_groups() == 0
    assert list(runtime.bucket.keys("raw/g")) == [runs[0][1]]
    logged.close()
    runtime.close()

"""The lake under `eventpipe up`: events sent over HTTP are queryable within 60 s of being curated,
an erasure run beside the server, or after it crashed, holds, and the lake process (which also
applies retention) is started again after a crash without a copy of any event."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson

from eventpipe.lake.files import files_on_disk
from eventpipe.localrun.lake_process import BUSY_EVERY_S, BUSY_LOOK_S, LAKE_EVERY_S, waits
from tests.conftest import make_event, ndjson
from tests.functional.test_cli import eventpipe
from tests.localrun.api_client import as_ndjson, batch_when_done, events, health, post_events, wait_for, wait_idle
from tests.localrun.process_probe import alive, lake_pid, query
from tests.localrun.server_harness import start_server
from tests.localrun.servers import end, up

if TYPE_CHECKING:
    from pathlib import Path


def _count(data_dir: Path, where: str = "true", *, distinct: bool = False) -> int | None:
    counted = "count(DISTINCT event_id)" if distinct else "count(*)"
    result = eventpipe("query", f"SELECT {counted} AS n FROM events WHERE {where}", "--json", data_dir=data_dir)
    return int(orjson.loads(result.stdout)[0]["n"]) if result.returncode == 0 else None


def test_events_sent_to_up_are_in_the_lake_within_60_s_and_can_be_erased(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with up(data_dir) as server:
        # GIVEN 30 events over HTTP, 10 of them one user's, all curated
        sent = [make_event(user_id="gone-7" if i % 3 == 0 else f"kept-{i}") for i in range(30)]
        reply = post_events(server.url, as_ndjson(sent))
        assert reply.status == 202, reply
        batch_when_done(server.url, reply.json()["batch_id"])
        curated_at = time.monotonic()
        # THEN the lake holds them within 60 s of their curation
        wait_for(lambda: _count(data_dir) == 30, what="30 events in the lake", timeout=60)
        assert time.monotonic() - curated_at < 60
        # WHEN the user is erased while the server runs
        erased = eventpipe("erase", "--user-id", "gone-7", "--json", data_dir=data_dir)
        assert erased.returncode == 0, erased.stderr
        assert orjson.loads(erased.stdout)["events_erased"] == 10
        assert "erasing once the batches it holds are done" in erased.stderr
        # THEN the lake keeps the 20 others, and the worker's later rounds bring nothing back
        assert _count(data_dir) == 20
        time.sleep(6)  # more than a lake round
        assert _count(data_dir, "user_id = 'gone-7'") == 0
    assert [p for p in data_dir.rglob("*") if p.is_file() and b"gone-7" in p.read_bytes()] == []


def test_an_erasure_after_a_crash_reaches_the_requests_still_in_the_request_log(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # GIVEN requests acknowledged but still in the request log (a minute's batching window) when
    # the server and its worker are killed
    sent = [make_event(user_id="gone-8" if i % 3 == 0 else f"kept-{i}") for i in range(30)]
    server = start_server(data_dir, env={"EVENTPIPE_BATCH_WINDOW_MS": "60000"})
    try:
        for start in range(0, 30, 10):
            assert post_events(server.url, as_ndjson(sent[start : start + 10])).status == 202
        server.kill()
    finally:
        end(server)
    # WHEN the user is erased with no server running
    erased = eventpipe("erase", "--user-id", "gone-8", "--json", data_dir=data_dir)
    assert erased.returncode == 0, erased.stderr
    # THEN no file holds the user's id, the request log's included
    assert [p for p in data_dir.rglob("*") if p.is_file() and b"gone-8" in p.read_bytes()] == []
    # AND a restarted server curates the 20 others and none of the user's
    with up(data_dir) as restarted:
        wait_for(lambda: _count(data_dir) == 20, what="20 events in the lake", timeout=60)
        assert health(restarted.url)["batches"]["pending"] == 0
    assert _count(data_dir, "user_id = 'gone-8'") == 0


def test_a_lake_process_killed_while_it_writes_is_started_again_and_the_lake_holds_each_event_once(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with up(data_dir) as server:
        # GIVEN 10,000 events curated, which the lake process starts writing
        for _ in range(20):
            assert post_events(server.url, as_ndjson(events(500))).status == 202
        wait_idle(server.url)
        pid = wait_for(lambda: lake_pid(server.process.pid), what="a lake process")
        lake = data_dir / "lake"
        wait_for(lambda: any(lake.glob("dt=*/hour=*/*")), what="a lake file being written", interval=0.01)
        # WHEN it is killed (SIGKILL)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), what=f"lake process {pid} gone")
        # THEN the server starts another, and answers meanwhile
        assert post_events(server.url, as_ndjson(events(10))).status == 202
        wait_for(
            lambda: health(server.url)["lake"]["restarts"] == 1 and lake_pid(server.process.pid) not in (None, pid),
            what="the lake process started again",
        )
        # AND the lake holds each event once, and no file it does not list
        wait_for(lambda: _count(data_dir) == 10_010, what="10,010 events in the lake", timeout=60)
        assert _count(data_dir, "true", distinct=True) == 10_010
        listed = {str(row[0]) for row in query(data_dir, "SELECT path FROM lake_files")}
        wait_for(
            lambda: set(files_on_disk(lake)) == listed,
            what="only listed files on disk (a temporary file of the killed process included)",
        )
        assert health(server.url)["lake"]["alive"] is True


def test_up_applies_retention_with_the_lake_off(tmp_path: Path) -> None:
    # GIVEN a data directory holding a dropped file 10 days old, and one of today
    data_dir = tmp_path / "data"
    (tmp_path / "in.ndjson").write_bytes(ndjson(make_event()))
    assert eventpipe("ingest", str(tmp_path / "in.ndjson"), data_dir=data_dir).returncode == 0
    processed = data_dir / "bucket" / "processed"
    processed.mkdir()
    for name in ("old.ndjson", "new.ndjson"):
        (processed / name).write_bytes(ndjson(make_event()))
    ten_days_ago = (datetime.now(UTC) - timedelta(days=10)).timestamp()
    os.utime(processed / "old.ndjson", (ten_days_ago, ten_days_ago))
    # WHEN `eventpipe up` runs with a retention of 7 days and no lake
    with up(data_dir, env={"EVENTPIPE_RETENTION_DAYS": "7", "EVENTPIPE_LAKE": "off"}) as server:
        # THEN its lake process drops the old file and keeps today's
        wait_for(lambda: not processed.joinpath("old.ndjson").exists(), what="the old dropped file gone")
        assert processed.joinpath("new.ndjson").exists()
        assert health(server.url)["lake"]["alive"] is True


def test_the_lake_process_spaces_its_rounds_while_the_worker_curates_fast_and_only_then() -> None:
    # 5 s after a round began: at 25,000 events/s the next waits, at 1,000 events/s it does not
    assert waits(25_000 * 5, 5.0, LAKE_EVERY_S)
    assert not waits(1_000 * 5, 5.0, LAKE_EVERY_S)
    # AND once the load (and its backlog) is over, it waits no longer: the last second is what counts
    assert not waits(1_000, BUSY_LOOK_S, 12.0)
    # AND however fast events come, a round begins BUSY_EVERY_S after the last (the contract is 60 s)
    assert not waits(25_000, BUSY_LOOK_S, BUSY_EVERY_S)
    assert BUSY_EVERY_S + BUSY_LOOK_S < 60

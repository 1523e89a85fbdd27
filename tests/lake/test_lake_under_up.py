"""The lake under `eventpipe up`: events sent over HTTP are queryable within 60 s of being curated,
and an erasure run beside the server, or after it crashed, holds."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson

from tests.conftest import make_event
from tests.functional.test_cli import eventpipe
from tests.localrun.api_client import as_ndjson, batch_when_done, health, post_events, wait_for
from tests.localrun.server_harness import start_server
from tests.localrun.servers import end, up

if TYPE_CHECKING:
    from pathlib import Path


def _count(data_dir: Path, where: str = "true") -> int | None:
    result = eventpipe("query", f"SELECT count(*) AS n FROM events WHERE {where}", "--json", data_dir=data_dir)
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

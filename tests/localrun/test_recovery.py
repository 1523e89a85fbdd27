"""Crashes and stops of `eventpipe up` under load: every event that got a 202 ends exactly once curated,
rejected or counted as a duplicate (docs/guarantees.md), whatever stopped the server."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from tests.localrun.api_client import (
    NDJSON,
    address,
    as_ndjson,
    call,
    events,
    health,
    insights,
    invalid_event,
    post_events,
    shapeless_event,
    wait_for,
    wait_idle,
)
from tests.localrun.process_probe import alive, curated_ids, query, runner_pids, worker_pid
from tests.localrun.server_harness import start_server
from tests.localrun.servers import end, up

if TYPE_CHECKING:
    from pathlib import Path

    from tests.localrun.server_harness import Server

LOAD_S = 3.0  # the longest a load runs
MAX_REQUESTS = 400
STOP_AFTER_S = 1.5  # when the server is stopped, into the load


@dataclass
class Load:
    """A client posting 100-event NDJSON batches (unique events, a few invalid ones and repeats of
    events already acknowledged) one at a time on a keep-alive connection, until the server fails it.

    `acked` maps each 202's batch id to the events sent; `unanswered` holds the one request (if any)
    that was sent but not answered: the server may or may not have stored it.
    """

    url: str
    acked: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unanswered: list[list[dict[str, Any]]] = field(default_factory=list)
    other_answers: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the load did not end"

    def _run(self) -> None:
        connection = http.client.HTTPConnection(*address(self.url), timeout=15)
        deadline = time.monotonic() + LOAD_S
        acked_valid: list[dict[str, Any]] = []
        try:
            for number in range(MAX_REQUESTS):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                batch = [*events(94), invalid_event(), invalid_event(), shapeless_event()]
                batch += acked_valid[number : number + 2] or events(2)  # repeats of acknowledged events
                batch.append(batch[0])  # and one within the batch
                try:
                    connection.request("POST", "/events", body=as_ndjson(batch), headers=NDJSON)
                    response = connection.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException):
                    self.unanswered.append(batch)
                    return
                if response.status != 202:
                    self.other_answers.append(response.status)
                    continue
                self.acked[orjson.loads(body)["batch_id"]] = batch
                acked_valid.extend(batch[:2])
        finally:
            connection.close()

    def valid_ids(self, batches: list[list[dict[str, Any]]]) -> set[str]:
        """The ids of the events among `batches` that the pipeline curates (first time seen)."""
        return {e["event_id"] for batch in batches for e in batch[:94] + batch[97:]}


def check_every_acknowledged_event_counted_once(server: Server, load: Load) -> None:
    """After a restart: every acknowledged batch done and accounted for, every valid event curated once."""
    assert load.acked, "the load got no 202 before the stop"
    assert not load.other_answers
    wait_idle(server.url, timeout=60)
    # per batch: done, and every event curated, rejected or a duplicate
    for batch_id, batch in load.acked.items():
        document = call(server.url, "GET", f"/batches/{batch_id}", timeout=10).json()
        assert document["status"] == "done", document
        assert document["received"] == len(batch)
        assert document["curated"] + document["duplicates"] + document["rejected"] == len(batch), document
        assert document["rejected"] == 3, document
    # globally: each valid event acknowledged is curated exactly once; only an unanswered request adds to them
    ids = curated_ids(server.data_dir)
    assert len(ids) == len(set(ids))
    acked = load.valid_ids(list(load.acked.values()))
    unanswered = load.valid_ids(load.unanswered)
    assert acked <= set(ids)
    assert set(ids) <= acked | unanswered
    # AND insights count the curated events, each once
    assert insights(server.url)["totals"]["events"] == len(ids)


def test_a_crash_under_load_then_a_restart_finishes_every_acknowledged_batch(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    try:
        # GIVEN a client posting batches
        load = Load(first.url).start()
        time.sleep(STOP_AFTER_S)
        # WHEN the server and its worker are killed mid-load (SIGKILL, as a crash or power loss)
        first.kill()
        load.join()
    finally:
        end(first)
    # THEN after a restart on the same data every acknowledged event is counted exactly once
    with up(data_dir) as second:
        check_every_acknowledged_event_counted_once(second, load)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_under_load_exits_cleanly_and_a_restart_finishes_everything(tmp_path: Path, sig: signal.Signals) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    try:
        # GIVEN a client posting batches
        load = Load(first.url).start()
        time.sleep(STOP_AFTER_S)
        # WHEN the server is asked to stop
        first.process.send_signal(sig)
        exit_status = first.process.wait(40)
        load.join()
    finally:
        end(first)
    # THEN it exits 0 (a stop asked for, Ctrl-C included, is a success) and says nothing alarming
    output = b"".join(first.output).decode(errors="replace")
    assert exit_status == 0, output
    for alarming in ("Traceback", "ERROR", "error:", "Exception"):
        assert alarming not in output, output
    assert "eventpipe: stopped" in output
    # AND a restart finishes every acknowledged batch
    with up(data_dir) as second:
        check_every_acknowledged_event_counted_once(second, load)


def kill_worker(server: Server) -> int:
    """SIGKILL the worker alone; its pid."""
    pid = wait_for(lambda: worker_pid(server.process.pid), what="a worker process")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what=f"worker {pid} gone")
    return pid


def restarted(server: Server, restarts: int, old_pid: int) -> None:
    wait_for(
        lambda: (
            health(server.url)["worker"]["restarts"] == restarts
            and (pid := worker_pid(server.process.pid)) is not None
            and pid != old_pid
        ),
        what=f"worker restart {restarts}",
    )


def wait_until_working(server: Server) -> None:
    """Return once the worker runs its loop (a fresh one takes a second to start): it reads a dropped
    file (which, unlike a POST, does not wake it)."""
    files = health(server.url)["worker"]["files_read"]
    folder = server.data_dir / "bucket" / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"probe-{files}.ndjson").write_bytes(as_ndjson(events(1)))
    wait_for(lambda: health(server.url)["worker"]["files_read"] > files, what="the worker reading files")


def test_a_worker_killed_with_a_backlog_is_restarted_and_the_backlog_finishes(tmp_path: Path) -> None:
    with up(tmp_path / "data") as server:
        # GIVEN a backlog of batches (the worker takes a while for 10,000 events)
        sent = {}
        for _ in range(20):
            batch = events(500)
            reply = post_events(server.url, as_ndjson(batch))
            assert reply.status == 202
            sent[reply.json()["batch_id"]] = batch
        runners = wait_for(lambda: runner_pids(worker_pid(server.process.pid) or 0), what="a runner process")
        # WHEN the worker alone is killed while it works through them
        old = kill_worker(server)
        # THEN its runners die with it (none goes on running a batch beside the next worker's)
        for runner in runners:
            wait_for(lambda runner=runner: not alive(runner), what=f"runner {runner} gone", timeout=10)
        # AND the server starts a new one, which finishes every batch
        restarted(server, 1, old)
        wait_idle(server.url)
        for batch_id in sent:
            document = call(server.url, "GET", f"/batches/{batch_id}").json()
            assert (document["status"], document["curated"]) == ("done", 500)
        assert len(curated_ids(server.data_dir)) == 10_000
        assert health(server.url)["worker"]["alive"] is True


def test_a_worker_killed_while_idle_is_restarted_and_new_batches_finish(tmp_path: Path) -> None:
    with up(tmp_path / "data") as server:
        # GIVEN an idle worker, killed alone twice (each time after the server restarted it)
        for restart in (1, 2):
            wait_until_working(server)
            time.sleep(0.3)  # idle again: waiting to be woken
            restarted(server, restart, kill_worker(server))
        # WHEN a client posts events
        reply = post_events(server.url, as_ndjson(events(5)), timeout=5)
        # THEN they are acknowledged and curated by the new worker
        assert reply.status == 202
        batch_id = reply.json()["batch_id"]
        wait_for(
            lambda: call(server.url, "GET", f"/batches/{batch_id}", timeout=10).json()["status"] == "done",
            what="the batch done",
            timeout=20,
        )


def test_requests_still_in_the_request_log_at_a_crash_are_grouped_once_after_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # GIVEN a server whose batching window (a minute) keeps acknowledged requests in its request log
    first = start_server(data_dir, env={"EVENTPIPE_BATCH_WINDOW_MS": "60000"})
    sent = {}
    try:
        for _ in range(10):
            batch = [*events(9), invalid_event()]
            reply = post_events(first.url, as_ndjson(batch))
            assert reply.status == 202
            sent[reply.json()["batch_id"]] = batch
        assert health(first.url)["batches"]["in_request_log"] == 10
        # WHEN the server and its worker are killed (SIGKILL)
        first.kill()
    finally:
        end(first)
    # THEN a restart groups every request once: each is done with its own counts
    with up(data_dir) as second:
        wait_idle(second.url)
        for batch_id in sent:
            document = call(second.url, "GET", f"/batches/{batch_id}", timeout=10).json()
            assert (document["status"], document["curated"], document["rejected"]) == ("done", 9, 1), document
        ids = curated_ids(data_dir)
        assert len(ids) == len(set(ids)) == 90
        # AND the crashed server's segment of the log is gone once its requests are grouped
        assert all(path.stat().st_size == 0 for path in (data_dir / "requests").iterdir())


def test_a_runner_killed_with_a_backlog_is_replaced_and_every_batch_finishes_once(tmp_path: Path) -> None:
    with up(tmp_path / "data") as server:
        # GIVEN a backlog of batches, run by the worker's runner processes
        sent = {}
        for _ in range(20):
            batch = events(500)
            reply = post_events(server.url, as_ndjson(batch))
            assert reply.status == 202
            sent[reply.json()["batch_id"]] = batch
        worker = wait_for(lambda: worker_pid(server.process.pid), what="a worker process")
        runner = wait_for(lambda: next(iter(runner_pids(worker)), None), what="a runner process")
        # WHEN a runner is killed (SIGKILL) while it runs a batch
        os.kill(runner, signal.SIGKILL)
        # THEN the worker lives on, runs that batch again in a new runner, and every event is curated once
        wait_idle(server.url)
        for batch_id in sent:
            document = call(server.url, "GET", f"/batches/{batch_id}").json()
            assert (document["status"], document["curated"]) == ("done", 500)
        ids = curated_ids(server.data_dir)
        assert len(ids) == len(set(ids)) == 10_000
        assert health(server.url)["worker"]["restarts"] == 0
        assert not alive(runner)


# Run in the killed process: `eventpipe erase` groups the request log itself (no `up` runs), and dies
# (SIGKILL, sent by itself) once the group's raw batch is written, before the group is recorded.
_KILLED_GROUPING = """
import os, signal, sys
from eventpipe import cli
from eventpipe.adapters.local.batches import SqliteBatchStore

SqliteBatchStore.record_group = lambda self, *args: os.kill(os.getpid(), signal.SIGKILL)
sys.exit(cli.main(["erase", "--user-id", "nobody"]))
"""


def group_raw_batches(data_dir: Path) -> set[str]:
    return {path.name.removesuffix(".ndjson") for path in (data_dir / "bucket" / "raw").glob("g*.ndjson")}


def post_requests(url: str, count: int, sent: dict[str, list[dict[str, Any]]]) -> None:
    for _ in range(count):
        batch = [*events(9), invalid_event()]
        reply = post_events(url, as_ndjson(batch))
        assert reply.status == 202
        sent[reply.json()["batch_id"]] = batch


def test_a_group_raw_batch_left_by_a_kill_before_its_record_is_deleted_on_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    sent: dict[str, list[dict[str, Any]]] = {}
    # GIVEN three requests in the request log (a minute's batching window keeps them there), the server killed
    first = start_server(data_dir, env={"EVENTPIPE_BATCH_WINDOW_MS": "60000"})
    try:
        post_requests(first.url, 3, sent)
        first.kill()
    finally:
        end(first)
    # AND a process grouping them killed after writing the group's raw batch, before recording the group
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_GROUPING],
        env={**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir)},
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (left,) = group_raw_batches(data_dir)
    assert query(data_dir, "SELECT count(*) FROM batches WHERE batch_id = ?", left) == [(0,)]
    # WHEN `eventpipe up` starts again and two more requests arrive before the three are grouped (so that
    # their group is not the one killed: it takes five requests, and has another name)
    with up(data_dir, env={"EVENTPIPE_BATCH_WINDOW_MS": "60000"}) as second:
        # THEN its worker deletes the raw batch no record names as it starts
        wait_for(lambda: left not in group_raw_batches(data_dir) or None, what="the unrecorded group deleted")
        post_requests(second.url, 2, sent)
        second.kill()
    # AND once grouped (by `eventpipe erase`, as no `up` runs) and run, every request is in one group whose
    # raw batch is there, every group raw batch is named by a record, and each event is curated once
    erased = subprocess.run(
        [sys.executable, "-m", "eventpipe", "erase", "--user-id", "nobody"],
        env={**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir)},
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert erased.returncode == 0  # the user was never there: only the grouping mattered
    assert erased.stderr == b"eventpipe: no event of that user is stored: nothing was changed\n"
    with up(data_dir) as third:
        wait_idle(third.url)
        for batch_id in sent:
            document = call(third.url, "GET", f"/batches/{batch_id}", timeout=10).json()
            assert (document["status"], document["curated"], document["rejected"]) == ("done", 9, 1), document
    recorded = {str(row[0]) for row in query(data_dir, "SELECT batch_id FROM batches WHERE batch_id LIKE 'g%'")}
    assert group_raw_batches(data_dir) == recorded
    assert len(recorded) == 1
    ids = curated_ids(data_dir)
    assert len(ids) == len(set(ids)) == 45

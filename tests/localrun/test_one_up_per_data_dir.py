"""One `eventpipe up` per data directory; `eventpipe ingest` and `replay` beside it hand their batches to
its worker, so no batch is run by two processes at once and every event is counted once."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import orjson

from tests.conftest import make_event, ndjson
from tests.localrun.api_client import post_events, wait_idle
from tests.localrun.process_probe import curated_count, curated_ids
from tests.localrun.servers import up

if TYPE_CHECKING:
    from pathlib import Path


def eventpipe(*args: str, data_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "eventpipe", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_second_up_on_the_same_data_dir_refuses_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with up(data_dir) as first:
        # WHEN a second `eventpipe up` starts on the same directory (on another port)
        second = subprocess.run(
            [sys.executable, "-m", "eventpipe", "up", "--port", "0", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # THEN it refuses at once, in one line naming the directory and the running process
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert str(data_dir) in lines[0]
        assert f"eventpipe up (pid {first.process.pid}, {first.url}/)" in lines[0]
        assert second.stdout == ""
        # AND the first one still serves
        assert post_events(first.url, ndjson(make_event())).status == 202
    # AND once it is gone, the directory is free again
    with up(data_dir) as again:
        assert again.process.poll() is None


def test_ingest_beside_a_running_up_is_counted_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    events = [make_event() for _ in range(1200)]  # three batches of a file
    bad = [b"{not json", orjson.dumps({**make_event(), "event_type": "no_such_type"})]
    path = tmp_path / "events.ndjson"
    path.write_bytes(ndjson(*events) + b"\n".join(bad) + b"\n")
    with up(data_dir) as server:
        # GIVEN requests arriving over HTTP meanwhile
        for _ in range(5):
            assert post_events(server.url, ndjson(*(make_event() for _ in range(100)))).status == 202
        # WHEN a file is ingested beside the running server
        result = eventpipe("ingest", "--json", str(path), data_dir=data_dir)
        # THEN the command reports the file's outcome, the worker of `up` having run its batches
        assert result.returncode == 0, result.stderr
        assert orjson.loads(result.stdout) == {
            "received": 1202,
            "curated": 1200,
            "duplicates": 0,
            "rejected": {"malformed_json": 1, "unknown_event_type": 1},
        }
        assert "its worker runs these batches" in result.stderr
        assert "failed" not in result.stderr + "".join(line.decode() for line in server.output)
        # AND every event is curated once, the file's and the requests'
        wait_idle(server.url)
        assert curated_count(data_dir) == len(set(curated_ids(data_dir))) == 1700
        # AND a second run of the same command changes nothing
        again = eventpipe("ingest", "--json", str(path), data_dir=data_dir)
        assert again.returncode == 0, again.stderr
        assert orjson.loads(again.stdout)["curated"] == 1200
        assert curated_count(data_dir) == 1700
    with up(data_dir) as restarted:
        health = wait_idle(restarted.url)
        assert health["batches"] == {"pending": 0, "failed": 0, "in_request_log": 0}

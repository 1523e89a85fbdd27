"""Backpressure of `eventpipe up`: when processing stops keeping up, the request log stops growing at
`EVENTPIPE_MAX_PENDING_MIB` (429 with Retry-After), and every request taken before is processed."""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from tests.localrun.api_client import as_ndjson, events, post_events, wait_for, wait_idle
from tests.localrun.process_probe import worker_pid
from tests.localrun.servers import up

if TYPE_CHECKING:
    from pathlib import Path


def test_a_stalled_worker_bounds_the_log_with_429_and_every_request_taken_is_processed(tmp_path: Path) -> None:
    with up(tmp_path / "data", env={"EVENTPIPE_MAX_PENDING_MIB": "1"}) as server:
        # GIVEN a worker that stops reading the request log (stopped, as a process starved of CPU)
        worker = wait_for(lambda: worker_pid(server.process.pid), what="a worker process")
        os.kill(worker, signal.SIGSTOP)
        try:
            # WHEN clients send 100-event requests, about 50 KB each, 60 of them (3 MB)
            replies = [post_events(server.url, as_ndjson(events(100)), timeout=10) for _ in range(60)]
        finally:
            os.kill(worker, signal.SIGCONT)
        statuses = [reply.status for reply in replies]
        taken = statuses.count(202)
        # THEN the log took about 1 MiB of them, and then every request was refused with 429 and Retry-After
        assert 10 <= taken <= 30
        assert statuses == [202] * taken + [429] * (60 - taken)
        assert replies[-1].headers["retry-after"] == "1"
        assert replies[-1].json()["error"] == "busy"
        # AND once the worker goes on, every request taken is processed and new ones are taken again
        assert wait_idle(server.url)["batches"]["failed"] == 0
        assert post_events(server.url, as_ndjson(events(100)), timeout=10).status == 202
        processed = wait_idle(server.url)["worker"]["events_processed"]
        assert processed == 100 * (taken + 1)

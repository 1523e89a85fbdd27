"""`eventpipe up` as a client sees it: the HTTP API of docs/http-api.md on a real process."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from tests.localrun.api_client import (
    JSON,
    NDJSON,
    as_ndjson,
    batch_when_done,
    call,
    events,
    health,
    insights,
    invalid_event,
    post_events,
    shapeless_event,
    wait_for,
)
from tests.localrun.process_probe import worker_pid
from tests.localrun.server_harness import EVENTPIPE
from tests.localrun.servers import up

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.localrun.server_harness import Server

TOKEN = "local-test-token-7f0c3a4e"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with up(tmp_path_factory.mktemp("up") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that requires a bearer token (on loopback, where it is optional)."""
    data_dir = tmp_path_factory.mktemp("guarded") / "data"
    with up(data_dir, "--host", "127.0.0.1", env={"EVENTPIPE_API_TOKEN": TOKEN}) as running:
        yield running


def _json_array(items: list[Any]) -> tuple[bytes, dict[str, str]]:
    return orjson.dumps(items), JSON


def _events_object(items: list[Any]) -> tuple[bytes, dict[str, str]]:
    return orjson.dumps({"events": items}), JSON


def _ndjson(items: list[Any]) -> tuple[bytes, dict[str, str]]:
    return as_ndjson(items), NDJSON


def _gzip_ndjson(items: list[Any]) -> tuple[bytes, dict[str, str]]:
    return gzip.compress(as_ndjson(items)), {**NDJSON, "content-encoding": "gzip"}


def _gzip_json(items: list[Any]) -> tuple[bytes, dict[str, str]]:
    return gzip.compress(orjson.dumps(items)), {**JSON, "content-encoding": "gzip"}


ENCODINGS: dict[str, Callable[[list[Any]], tuple[bytes, dict[str, str]]]] = {
    "json-array": _json_array,
    "events-object": _events_object,
    "ndjson": _ndjson,
    "gzip-ndjson": _gzip_ndjson,
    "gzip-json": _gzip_json,
}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_posted_events_are_curated_rejected_and_shown_in_insights(server: Server, encoding: str) -> None:
    # GIVEN three valid events, one that breaks its schema and one without an event_id
    valid = [*events(1, "page_view"), *events(1, "add_to_cart"), *events(1, "purchase")]
    body, headers = ENCODINGS[encoding]([*valid, invalid_event(), shapeless_event()])
    before = insights(server.url)["totals"]
    # WHEN they are posted
    reply = post_events(server.url, body, headers)
    # THEN the answer is 202 with the batch id and the shape failure found at ingest
    assert reply.status == 202, reply
    answer = reply.json()
    assert set(answer) == {"batch_id", "received", "rejected", "errors"}
    assert (answer["received"], answer["rejected"]) == (5, 1)
    assert answer["errors"][0]["reasons"][0]["code"] == "envelope_invalid"
    # AND the batch becomes done with every event accounted for
    batch = batch_when_done(server.url, answer["batch_id"])
    assert batch["status"] == "done"
    assert (batch["received"], batch["curated"], batch["duplicates"], batch["rejected"]) == (5, 3, 0, 2)
    assert {r["reasons"][0]["code"] for r in batch["rejections"]} == {"envelope_invalid", "schema_violation"}
    # AND insights count the three curated events, one of each type, and the two rejections
    after = insights(server.url)["totals"]
    assert after["events"] - before["events"] == 3
    for event_type in ("page_view", "add_to_cart", "purchase"):
        assert after["by_type"].get(event_type, 0) - before["by_type"].get(event_type, 0) == 1
    assert sum(after["rejected"].values()) - sum(before["rejected"].values()) == 2


def test_events_posted_again_are_counted_as_duplicates_once(server: Server) -> None:
    # GIVEN a batch of events that was curated
    body = as_ndjson(events(4))
    first = batch_when_done(server.url, post_events(server.url, body).json()["batch_id"])
    assert first["curated"] == 4
    before = insights(server.url)["totals"]
    # WHEN the same events are posted again (a client retrying)
    reply = post_events(server.url, body)
    # THEN they are duplicates, not new events
    assert reply.status == 202
    second = batch_when_done(server.url, reply.json()["batch_id"])
    assert (second["curated"], second["duplicates"]) == (0, 4)
    after = insights(server.url)["totals"]
    assert after["events"] == before["events"]
    assert after["duplicates"] - before["duplicates"] == 4


def test_health_has_counters(server: Server) -> None:
    # WHEN /health is read after some traffic
    post_events(server.url, as_ndjson(events(1)))
    document = health(server.url)
    # THEN it reports the batches, the server's answers, the worker and the lake process
    assert document["status"] == "ok"
    assert set(document["batches"]) == {"pending", "failed", "in_request_log"}
    # AND a request still in the request log counts as pending
    assert document["batches"]["pending"] >= document["batches"]["in_request_log"] >= 0
    assert document["responses"]["2xx"] >= 1
    assert document["uptime_s"] >= 0
    worker = document["worker"]
    assert worker["alive"] is True
    assert worker["restarts"] == 0
    assert {"batches_processed", "events_processed", "files_read"} <= set(worker)
    # AND the lake process, which writes the lake
    lake = document["lake"]
    assert (lake["alive"], lake["restarts"]) == (True, 0)
    assert {"events_written", "last_seen_s"} <= set(lake)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/events", "POST"),
        ("PUT", "/events", "POST"),
        ("POST", "/health", "GET"),
        ("POST", "/insights", "GET"),
        ("DELETE", "/batches/abc", "GET"),
        ("GET", "/2015-03-31/functions/ingest/invocations", "POST"),
    ],
)
def test_a_wrong_method_is_405_with_allow(server: Server, method: str, path: str, allowed: str) -> None:
    reply = call(server.url, method, path, b"" if method in ("POST", "PUT") else None)
    assert reply.status == 405, reply
    assert reply.headers["allow"] == allowed
    assert reply.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/nope", "/events/1", "/batches/", "/batches/no-such-batch", "/batches/a/b"])
def test_an_unknown_path_or_batch_is_404(server: Server, path: str) -> None:
    reply = call(server.url, "GET", path)
    assert reply.status == 404, reply
    assert reply.json()["error"] == "not_found"


def test_the_dashboard_page_is_served(server: Server) -> None:
    reply = call(server.url, "GET", "/")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")


def test_the_tracker_is_served_to_pages_of_any_site(server: Server) -> None:
    # WHEN a page of another site loads the tracker with a script tag
    reply = call(
        server.url, "GET", "/tracker.js", headers={"host": "collect.example", "origin": "https://shop.example"}
    )
    # THEN it gets the script, small, and cacheable for a while
    assert reply.status == 200, reply
    assert reply.headers["content-type"] == "text/javascript; charset=utf-8"
    assert reply.headers["cache-control"].startswith("public")
    assert b"w.eventpipe = api" in reply.body
    assert len(reply.body) <= 8192


PROTECTED = [
    ("GET", "/insights"),
    ("POST", "/events"),
    ("GET", "/batches/abc"),
    ("GET", "/nope"),
    ("GET", "/dashboard/rejections"),
    ("POST", "/2015-03-31/functions/ingest/invocations"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", f"Basic {TOKEN}", TOKEN, f"Token {TOKEN}"],
)
def test_without_the_right_bearer_token_every_route_is_401(
    guarded: Server, method: str, path: str, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization is not None else {}
    reply = call(guarded.url, method, path, b"{}" if method == "POST" else None, headers)
    assert reply.status == 401, reply
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.json()["error"] == "unauthorized"


def test_with_the_token_the_api_answers_and_health_and_the_page_stay_open(guarded: Server) -> None:
    bearer = {"authorization": f"Bearer {TOKEN}"}
    # WHEN a client sends the token
    reply = post_events(guarded.url, as_ndjson(events(2)), {**NDJSON, **bearer})
    # THEN it is served as without a token
    assert reply.status == 202, reply
    batch_id = reply.json()["batch_id"]
    assert batch_when_done_with(guarded, batch_id, bearer)["curated"] == 2
    assert call(guarded.url, "GET", "/insights", headers=bearer).status == 200
    assert call(guarded.url, "GET", "/insights", headers={"authorization": f"bearer  {TOKEN} "}).status == 200
    # AND /health, the dashboard page and the tracker (which hold no data) need none
    assert call(guarded.url, "GET", "/health").status == 200
    assert call(guarded.url, "GET", "/").status == 200
    assert call(guarded.url, "GET", "/tracker.js").status == 200


def batch_when_done_with(server: Server, batch_id: str, headers: dict[str, str]) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        document: dict[str, Any] = call(server.url, "GET", f"/batches/{batch_id}", headers=headers).json()
        return document if document["status"] == "done" else None

    return wait_for(finished, what=f"batch {batch_id} done")


def _environ_without_token() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "EVENTPIPE_API_TOKEN"}


def test_binding_off_loopback_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    # WHEN eventpipe up is asked to listen on every interface with no token set
    result = subprocess.run(
        [str(EVENTPIPE), "up", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "data")],
        env=_environ_without_token(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # THEN it refuses, saying which variable to set, and never starts serving
    assert result.returncode == 2, result
    assert "EVENTPIPE_API_TOKEN" in result.stderr
    assert "dashboard and API at" not in result.stdout


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    # GIVEN a port that another socket listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # WHEN eventpipe up is asked for it
        result = subprocess.run(
            [str(EVENTPIPE), "up", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            env=_environ_without_token(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    # THEN it exits with a message that names the port and what to do
    assert result.returncode == 2, result
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "choose another --port" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["70000", "65536"])
def test_a_port_out_of_range_is_a_clear_error(tmp_path: Path, port: str) -> None:
    result = subprocess.run(
        [str(EVENTPIPE), "up", "--port", port, "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result
    assert "not a port number" in result.stderr


def _spawned_worker(pid: int) -> int | None:
    try:
        return worker_pid(pid)
    except OSError:  # the process is not there (yet, or any more)
        return None


def test_a_stop_signal_during_startup_stops_the_server(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(EVENTPIPE), "up", "--port", "0", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_environ_without_token(),
        start_new_session=True,
    )
    try:
        # GIVEN a server that is starting: its worker process has just been spawned
        wait_for(lambda: _spawned_worker(process.pid), what="the worker spawned", interval=0.001)
        # WHEN it is asked to stop
        process.send_signal(signal.SIGTERM)
        # THEN it stops, as it would a moment later
        assert process.wait(8) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)

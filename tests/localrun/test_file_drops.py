"""File drops into `<data dir>/bucket/incoming/` of a running `eventpipe up`: read once complete,
moved to `processed/`, and every line counted exactly once, even across a stop or a crash."""

from __future__ import annotations

import gzip
import itertools
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from tests.localrun.api_client import events, health, insights, invalid_event, shapeless_event, wait_for, wait_idle
from tests.localrun.process_probe import batches_of_source, curated_count, query
from tests.localrun.server_harness import start_server
from tests.localrun.servers import end, up

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.localrun.server_harness import Server

FILE_LIMIT = 16 * 1024 * 1024  # EVENTPIPE_MAX_FILE_BYTES of these servers: a gzip bomb stops early


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("drops") / "data"
    with up(data_dir, env={"EVENTPIPE_MAX_FILE_BYTES": str(FILE_LIMIT)}) as running:
        yield running


def incoming(server: Server) -> Path:
    return server.data_dir / "bucket" / "incoming"


def processed(server: Server) -> Path:
    return server.data_dir / "bucket" / "processed"


def drop(server: Server, name: str, data: bytes) -> None:
    """Write under a `.part` name, then rename: how a producer hands over a complete file."""
    target = incoming(server) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, target)


def mixed_lines(valid: int) -> tuple[bytes, dict[str, int]]:
    """NDJSON of `valid` valid events plus one each of: schema violation, no event_id, not JSON, a repeat."""
    good = events(valid)
    lines = [orjson.dumps(e) for e in good]
    lines += [orjson.dumps(invalid_event()), orjson.dumps(shapeless_event()), b'{"event_id": ', lines[0]]
    return b"\n".join(lines) + b"\n", {"received": valid + 4, "curated": valid, "duplicates": 1, "rejected": 3}


def file_totals(server: Server, name: str, *, timeout: float = 60.0) -> dict[str, int]:
    """Once the file has moved to processed/ and its batches are done: its counts, summed over them."""
    wait_for(
        lambda: (processed(server) / name).exists() and not (incoming(server) / name).exists(),
        what=f"{name} moved to processed/",
        timeout=timeout,
    )
    source = f"s3:incoming/{name}"

    def done() -> list[dict[str, Any]] | None:
        batches = batches_of_source(server.data_dir, source)
        # moved means stored: every batch of the file exists by now (a refused file may have none)
        return batches if all(b["status"] == "done" for b in batches) else None

    batches = wait_for(done, what=f"batches of {name} done", timeout=timeout)
    return {key: sum(b[key] for b in batches) for key in ("received", "curated", "duplicates", "rejected")}


def malformed_count(server: Server, name: str) -> int:
    rows = query(
        server.data_dir,
        "SELECT COUNT(*) FROM quarantine q JOIN batches b ON q.batch_id = b.batch_id "
        "WHERE b.source = ? AND CAST(q.reasons AS TEXT) LIKE '%malformed_json%'",
        f"s3:incoming/{name}",
    )
    return int(rows[0][0])


def test_a_renamed_file_is_ingested_and_moved_to_processed(server: Server) -> None:
    # GIVEN a complete file handed over by rename
    data, expected = mixed_lines(20)
    # WHEN it lands in incoming/
    drop(server, "orders.ndjson", data)
    # THEN every line is counted once and the file moves to processed/ unchanged
    assert file_totals(server, "orders.ndjson") == expected
    assert (processed(server) / "orders.ndjson").read_bytes() == data


def test_a_gzip_file_is_ingested(server: Server) -> None:
    data, expected = mixed_lines(10)
    drop(server, "compressed.ndjson.gz", gzip.compress(data))
    assert file_totals(server, "compressed.ndjson.gz") == expected


def test_a_json_document_file_is_ingested(server: Server) -> None:
    drop(server, "document.json", orjson.dumps({"events": events(3)}))
    assert file_totals(server, "document.json") == {"received": 3, "curated": 3, "duplicates": 0, "rejected": 0}


def test_a_file_in_a_subfolder_is_ingested_and_keeps_its_folder(server: Server) -> None:
    data, expected = mixed_lines(5)
    drop(server, "2026/11/28/part-0001.ndjson", data)
    assert file_totals(server, "2026/11/28/part-0001.ndjson") == expected


def test_partial_and_hidden_files_are_left_alone(server: Server) -> None:
    # GIVEN files still being written (by name) and hidden ones, with valid events in them
    waiting = ["upload.ndjson.part", "upload.ndjson.tmp", "upload.ndjson.partial", ".hidden.ndjson", ".dir/a.ndjson"]
    for name in waiting:
        path = incoming(server) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(make_one()) + b"\n")
    # WHEN a complete file dropped after them has been read, and more scans have passed
    drop(server, "after.ndjson", orjson.dumps(make_one()) + b"\n")
    file_totals(server, "after.ndjson")
    scans = health(server.url)["worker"]["files_read"]
    time.sleep(1.5)  # three more scans (one every 0.5 s)
    # THEN the others are untouched and no batch was cut from them
    assert health(server.url)["worker"]["files_read"] == scans
    for name in waiting:
        assert (incoming(server) / name).exists(), name
        assert not batches_of_source(server.data_dir, f"s3:incoming/{name}"), name


def make_one() -> dict[str, Any]:
    return events(1)[0]


def test_a_file_appended_slowly_is_not_read_before_it_stops_changing(server: Server) -> None:
    # GIVEN a producer that writes a file in place, in five parts cut mid-line, pausing under a second between them
    data, expected = mixed_lines(40)
    cuts = [len(data) * k // 5 for k in range(6)]
    path = incoming(server) / "slow.ndjson"
    with path.open("wb") as stream:
        for start, stop in itertools.pairwise(cuts):
            stream.write(data[start:stop])
            stream.flush()
            if stop < len(data):
                time.sleep(0.9)
    # THEN the file is read once complete: every line counted once, none cut
    assert file_totals(server, "slow.ndjson") == expected
    assert malformed_count(server, "slow.ndjson") == 1  # only the line that is broken on purpose


def gzip_bomb(expanded: int) -> bytes:
    """`expanded` zero bytes as gzip: concatenated members of 8 MiB each, about 8 KiB apiece."""
    member = gzip.compress(b"\0" * (8 * 1024 * 1024), compresslevel=9)
    return member * (expanded // (8 * 1024 * 1024))


def test_a_gzip_bomb_is_refused_and_the_worker_goes_on(server: Server) -> None:
    # GIVEN a file of under a MiB that expands to 1 GiB, far over the file limit
    bomb = gzip_bomb(1024 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    # WHEN it is dropped
    drop(server, "bomb.ndjson.gz", bomb)
    # THEN it is given up on (moved out of incoming/, no event from it) without harm to the worker
    totals = file_totals(server, "bomb.ndjson.gz")
    assert totals["curated"] == 0
    worker = health(server.url)["worker"]
    assert (worker["alive"], worker["restarts"]) == (True, 0)
    # AND the next file is read as usual
    data, expected = mixed_lines(3)
    drop(server, "after-bomb.ndjson", data)
    assert file_totals(server, "after-bomb.ndjson") == expected


def test_a_deeply_nested_json_file_is_refused_alone(tmp_path: Path) -> None:
    with up(tmp_path / "data") as own:  # a server of its own: the failure takes its worker down for good
        # GIVEN a file that is one JSON document nested 600 deep, then a good file
        drop(own, "a-deep.json", b"[" * 600 + b"]" * 600)
        data, expected = mixed_lines(3)
        drop(own, "b-good.ndjson", data)
        # THEN the good file is read, and the worker never restarted
        assert file_totals(own, "b-good.ndjson", timeout=10) == expected
        assert health(own.url)["worker"]["restarts"] == 0


LARGE = 20_000
LARGE_ENV = {"EVENTPIPE_MAX_BATCH_EVENTS": "100"}  # 200 batches: a stop finds the file half done


def large_file() -> tuple[bytes, dict[str, int]]:
    """LARGE lines: valid events, with about 3% repeats and 2% invalid ones."""
    lines: list[bytes] = []
    for number, event in enumerate(events(LARGE - LARGE // 20)):
        lines.append(orjson.dumps(event))
        if number % 33 == 0 and len(lines) < LARGE:
            lines.append(lines[-1])
    while len(lines) < LARGE:
        lines.append(orjson.dumps(invalid_event()))
    unique = LARGE - LARGE // 20
    return b"\n".join(lines[:LARGE]) + b"\n", {"received": LARGE, "curated": unique}


def check_counted_once(server: Server, name: str, expected: dict[str, int]) -> None:
    totals = file_totals(server, name)
    assert totals["received"] == expected["received"]
    assert totals["curated"] + totals["duplicates"] + totals["rejected"] == expected["received"]
    assert totals["curated"] == expected["curated"]
    assert curated_count(server.data_dir) == expected["curated"]
    wait_idle(server.url)
    assert insights(server.url)["totals"]["events"] == expected["curated"]


def batch_states(server: Server, name: str) -> dict[str, int]:
    states: dict[str, int] = {}
    for batch in batches_of_source(server.data_dir, f"s3:incoming/{name}"):
        states[batch["status"]] = states.get(batch["status"], 0) + 1
    return states


def half_done(server: Server) -> dict[str, int] | None:
    states = batch_states(server, "large.ndjson")
    return states if states.get("done") and states.get("pending") else None


@pytest.mark.slow
def test_a_stop_in_the_middle_of_a_large_drop_then_a_restart_counts_every_line_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data, expected = large_file()
    first = start_server(data_dir, env=LARGE_ENV)
    try:
        # GIVEN a large file being worked through
        drop(first, "large.ndjson", data)
        states = wait_for(lambda: half_done(first), what="some batches of the file done, others pending", interval=0.02)
        # WHEN the server is stopped (SIGTERM)
        status = first.stop(signal.SIGTERM)
    finally:
        end(first)
    # THEN it exits cleanly, with part of the file left pending
    assert status == 0, b"".join(first.output).decode(errors="replace")
    assert states.get("pending")
    # AND after a restart every line is counted exactly once
    with up(data_dir, env=LARGE_ENV) as second:
        check_counted_once(second, "large.ndjson", expected)


@pytest.mark.slow
def test_a_crash_in_the_middle_of_a_large_drop_then_a_restart_counts_every_line_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data, expected = large_file()
    first = start_server(data_dir, env=LARGE_ENV)
    try:
        # GIVEN a large file whose batches are being stored
        drop(first, "large.ndjson", data)
        wait_for(lambda: batch_states(first, "large.ndjson") or None, what="a first batch stored", interval=0.01)
        # WHEN the server and its worker are killed (SIGKILL)
        first.kill()
    finally:
        end(first)
    # THEN after a restart every line is counted exactly once
    with up(data_dir, env=LARGE_ENV) as second:
        check_counted_once(second, "large.ndjson", expected)

"""The command line as a user runs it: a real process, a real data directory."""

from __future__ import annotations

import gzip
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
import zlib
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from tests.conftest import make_event, ndjson

if TYPE_CHECKING:
    from pathlib import Path


def eventpipe(
    *args: str, data_dir: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "eventpipe", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def generate(path: Path, count: int, *, seed: int = 5) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventpipe",
            "generate",
            "--count",
            str(count),
            "--seed",
            str(seed),
            "--invalid-ratio",
            "0.1",
            "--duplicate-ratio",
            "0.05",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    path.write_bytes(result.stdout)


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def test_ingest_says_nothing_on_stderr_about_native_objects_at_exit(tmp_path: Path) -> None:
    # GIVEN a file whose events go through the insights store's working sketches
    events = tmp_path / "events.ndjson"
    generate(events, 300)
    # WHEN ingested
    result = eventpipe("ingest", str(events), "--json", data_dir=tmp_path / "data")
    # THEN the kept unions were released before exit: no leak report from the sketch library
    assert result.returncode == 0, result.stderr
    assert "leaked" not in result.stderr


def test_ingest_then_insights_rejected_and_schemas(tmp_path: Path) -> None:
    # GIVEN a generated file
    events = tmp_path / "events.ndjson"
    generate(events, 3000)
    data = tmp_path / "data"
    # WHEN ingested
    summary = as_json(eventpipe("ingest", str(events), "--json", data_dir=data))
    # THEN the summary accounts for every line
    rejected = sum(summary["rejected"].values())
    assert summary["received"] == 3000
    assert summary["curated"] + summary["duplicates"] + rejected == 3000
    # AND insights and the quarantine agree with it
    insights = as_json(eventpipe("insights", "--since", "1d", "--json", data_dir=data))
    assert insights["totals"]["events"] + insights["totals"]["bots"] == summary["curated"]  # crawlers apart
    assert insights["totals"]["rejected"] == summary["rejected"]
    assert set(insights) == {"since", "until", "currency", "totals", "funnel", "lag_ms", "minutes"}
    records = as_json(eventpipe("rejected", "--json", data_dir=data))
    assert len(records) == rejected
    assert {"event_id", "batch_id", "stage", "reasons", "raw"} <= set(records[0])
    assert {"code", "path", "message"} == set(records[0]["reasons"][0])
    listed = as_json(eventpipe("schemas", "list", "--json", data_dir=data))
    assert [(s["event_type"], s["version"]) for s in listed][:2] == [("add_to_cart", "1-0-0"), ("page_view", "1-0-0")]
    # AND the human output says the same
    text = eventpipe("insights", "--since", "1d", data_dir=data).stdout
    assert f"events        {insights['totals']['events']:>10,}" in text
    assert f"bots          {insights['totals']['bots']:>10,}" in text


def test_ingesting_the_same_file_twice_changes_nothing(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    generate(events, 1200)
    data = tmp_path / "data"
    first = as_json(eventpipe("ingest", str(events), "--json", data_dir=data))
    insights = as_json(eventpipe("insights", "--since", "1d", "--json", data_dir=data))["totals"]
    second = as_json(eventpipe("ingest", str(events), "--json", data_dir=data))
    assert second == first
    assert as_json(eventpipe("insights", "--since", "1d", "--json", data_dir=data))["totals"] == insights


@pytest.mark.slow
def test_an_ingest_killed_halfway_and_run_again_counts_every_event_once(tmp_path: Path) -> None:
    # GIVEN a file of 40 batches, and an ingest of it killed with SIGKILL after some batches are done
    events = tmp_path / "events.ndjson"
    generate(events, 20_000, seed=8)
    data = tmp_path / "data"
    # batches of 500 (a file is cut at the group size, 2,000 by default): 40 of them
    environ = {**os.environ, "EVENTPIPE_DATA_DIR": str(data), "EVENTPIPE_GROUP_MAX_EVENTS": "500"}
    process = subprocess.Popen(
        [sys.executable, "-m", "eventpipe", "ingest", str(events)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    done = 0
    while done < 8 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        done = count_done_batches(data)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert 0 < done < 40, "the ingest must be killed halfway for this test to mean anything"
    # WHEN it is run again, with the same batch size (a batch's id depends on it)
    summary = as_json(
        eventpipe("ingest", str(events), "--json", data_dir=data, env={"EVENTPIPE_GROUP_MAX_EVENTS": "500"})
    )
    # THEN every event is curated, rejected or a duplicate exactly once
    rejected = sum(summary["rejected"].values())
    assert summary["received"] == 20_000
    assert summary["curated"] + summary["duplicates"] + rejected == 20_000
    with sqlite3.connect(data / "eventpipe.db") as db:
        curated = dict(db.execute("SELECT event_type, COUNT(*) FROM curated GROUP BY event_type").fetchall())
        quarantined = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
        unfinished = db.execute("SELECT COUNT(*) FROM batches WHERE status != 'done'").fetchone()[0]
    assert sum(curated.values()) == summary["curated"]
    assert quarantined == rejected
    assert unfinished == 0
    # AND insights count each curated event once
    insights = as_json(eventpipe("insights", "--since", "1d", "--include-bots", "--json", data_dir=data))
    assert insights["totals"]["by_type"] == curated
    assert insights["totals"]["duplicates"] == summary["duplicates"]


def count_done_batches(data: Path) -> int:
    try:
        with sqlite3.connect(f"file:{data / 'eventpipe.db'}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM batches WHERE status = 'done'").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_bad_paths_are_reported_and_the_good_ones_processed(tmp_path: Path) -> None:
    good = tmp_path / "good.ndjson"
    good.write_bytes(ndjson(make_event()))
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    fifo = tmp_path / "fifo.ndjson"
    os.mkfifo(fifo)  # opening it would block until something writes to it
    result = eventpipe(
        "ingest",
        str(tmp_path / "missing.ndjson"),
        str(tmp_path),
        str(fifo),
        str(empty),
        str(good),
        "--json",
        data_dir=tmp_path / "data",
    )
    assert result.returncode == 1
    assert "missing.ndjson: no such file" in result.stderr
    assert "is a directory" in result.stderr
    assert "fifo.ndjson: is not a regular file" in result.stderr
    assert "empty.ndjson: no events in the file" in result.stderr
    assert orjson.loads(result.stdout)["curated"] == 1
    assert "Traceback" not in result.stderr


def test_a_gzip_bomb_is_stopped_at_the_file_limit(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.ndjson.gz"
    bomb.write_bytes(gzip.compress(ndjson(make_event()) * 200_000, compresslevel=9))
    result = eventpipe("ingest", str(bomb), data_dir=tmp_path / "data", env={"EVENTPIPE_MAX_FILE_BYTES": "3000000"})
    assert result.returncode == 1
    assert "expands past the limit of 3000000 bytes" in result.stderr
    assert "Traceback" not in result.stderr
    # AND the batches read before the limit are processed and reported
    assert "received" in result.stdout
    received = int(result.stdout.split()[1].replace(",", ""))
    assert 0 < received < 200_000


def test_a_bad_schema_file_stops_the_command_with_its_path(tmp_path: Path) -> None:
    schema = tmp_path / "schemas" / "search" / "1-0-0.json"
    schema.parent.mkdir(parents=True)
    schema.write_text('{"type": "objekt"}')
    result = eventpipe(
        "schemas", "list", data_dir=tmp_path / "data", env={"EVENTPIPE_SCHEMA_DIR": str(schema.parents[1])}
    )
    assert result.returncode == 2
    assert str(schema) in result.stderr
    assert "not a valid JSON Schema" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("EVENTPIPE_MAX_EVENT_BYTES", "lots", "EVENTPIPE_MAX_EVENT_BYTES='lots' is not a whole number"),
        ("EVENTPIPE_ENRICHERS", "timestamps,magic", "magic"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path: Path, variable: str, value: str, message: str) -> None:
    result = eventpipe("replay", data_dir=tmp_path / "data", env={variable: value})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_replay_rejected_after_adding_a_schema(tmp_path: Path) -> None:
    event = make_event(properties={"query": "boots"})
    event["event_type"] = "search"
    source = tmp_path / "search.ndjson"
    source.write_bytes(ndjson(event))
    data = tmp_path / "data"
    assert as_json(eventpipe("ingest", str(source), "--json", data_dir=data))["rejected"] == {"unknown_event_type": 1}
    schema = tmp_path / "schemas" / "search" / "1-0-0.json"
    schema.parent.mkdir(parents=True)
    schema.write_text('{"type": "object", "required": ["query"]}')
    env = {"EVENTPIPE_SCHEMA_DIR": str(schema.parents[1])}
    replayed = as_json(eventpipe("replay", "--rejected", "--json", data_dir=data, env=env))
    assert replayed == {"received": 1, "curated": 1, "duplicates": 0, "rejected": {}, "skipped": {}}
    assert as_json(eventpipe("rejected", "--json", data_dir=data)) == []


def test_generate_writes_the_requested_number_of_lines(tmp_path: Path) -> None:
    out = tmp_path / "g.ndjson"
    generate(out, 250)
    assert len(out.read_bytes().splitlines()) == 250


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["insights", "--since", "99999999d"], "between 1970 and 9998"),
        (["insights", "--since", "2d"], "the window is 48.0 hours long; at most 24 hours are served"),
        (["insights", "--since", "yesterday"], "neither an RFC 3339 time"),
        (["generate", "--count", "3", "--span-minutes", "0"], "--span-minutes >= 1"),
        (["generate", "--count", "3", "--invalid-ratio", "0.8", "--duplicate-ratio", "0.5"], "sum of at most 1"),
        (["generate", "--count", "3", "--invalid-ratio", "nan"], "the ratios >= 0"),
        (["generate", "--count", "3", "--duplicate-ratio", "nan"], "the ratios >= 0"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = eventpipe(*args, data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = eventpipe("replay", data_dir=not_a_dir)
    assert result.returncode == 2
    assert f"cannot use the data directory {not_a_dir}: File exists" in result.stderr
    assert "Traceback" not in result.stderr


# --- read commands, the quarantine listing, replay's skipped records, files that are not events ----------------


@pytest.mark.parametrize("command", [["insights"], ["insights", "--json"], ["rejected"], ["rejected", "--json"]])
def test_a_read_command_on_a_directory_without_data_says_so_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    # GIVEN a mistyped data directory
    mistyped = tmp_path / "dtaa"
    # WHEN a read command runs on it
    result = eventpipe(*command, data_dir=mistyped)
    # THEN it exits non-zero with one line naming the directory, prints no zeros, and creates nothing
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"eventpipe: error: no eventpipe data in {mistyped}: ingest some first, or set EVENTPIPE_DATA_DIR "
        "to the directory that holds it"
    ]
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def quarantine_of_three(tmp_path: Path) -> Path:
    """A data directory whose quarantine holds three records, quarantined in the order a, b, c."""
    data = tmp_path / "data"
    for name, line in (("a", b"{broken a"), ("b", b"{broken b"), ("c", b"{broken c")):
        source = tmp_path / f"{name}.ndjson"
        source.write_bytes(ndjson(make_event()) + line + b"\n")
        assert eventpipe("ingest", str(source), data_dir=data).returncode == 0
    return data


def test_rejected_lists_the_newest_first_with_the_total(tmp_path: Path) -> None:
    data = quarantine_of_three(tmp_path)
    # WHEN the quarantine is listed
    text = eventpipe("rejected", data_dir=data).stdout
    records = as_json(eventpipe("rejected", "--json", data_dir=data))
    limited = eventpipe("rejected", "--limit", "2", data_dir=data).stdout
    # THEN the newest comes first, and the text says how many there are
    assert [r["raw"] for r in records] == ["{broken c", "{broken b", "{broken a"]
    assert text.splitlines()[0] == "3 quarantined events, the newest 3 first:"
    assert limited.splitlines()[0] == "3 quarantined events, the newest 2 first:"
    assert limited.count("malformed_json") == 2
    assert [r["raw"] for r in as_json(eventpipe("rejected", "--json", "--limit", "1", data_dir=data))] == ["{broken c"]


@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_rejected_limit_must_be_a_positive_number(tmp_path: Path, limit: str) -> None:
    result = eventpipe("rejected", "--limit", limit, data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert "--limit" in result.stderr
    assert "Traceback" not in result.stderr


def test_replay_rejected_says_how_many_it_skipped_and_why(tmp_path: Path) -> None:
    # GIVEN a quarantine of two events over the size limit (refused at ingest, only their start kept) and
    # one event of an unknown type
    big = make_event(properties={"path": "/p/1", "title": "x" * 3000})
    source = tmp_path / "mixed.ndjson"
    source.write_bytes(ndjson(big, {**big, "event_id": str(uuid.uuid4())}, {**make_event(), "event_type": "search"}))
    data = tmp_path / "data"
    env = {"EVENTPIPE_MAX_EVENT_BYTES": "2048"}
    assert as_json(eventpipe("ingest", "--json", str(source), data_dir=data, env=env))["rejected"] == {
        "too_large": 2,
        "unknown_event_type": 1,
    }
    # WHEN the quarantine is replayed
    replayed = as_json(eventpipe("replay", "--rejected", "--json", data_dir=data, env=env))
    text = eventpipe("replay", "--rejected", data_dir=data, env=env).stdout
    # THEN the event is replayed (and rejected again), and the two are reported as skipped, with why
    assert replayed["received"] == 1
    assert replayed["rejected"] == {"unknown_event_type": 1}
    assert replayed["skipped"] == {"refused_at_ingest": 2}
    assert "skipped             2" in text
    assert "2  refused at ingest (not JSON, too large, no event_id or event_type): no schema admits them" in text


def test_a_file_that_is_not_json_gets_a_one_line_warning(tmp_path: Path) -> None:
    # GIVEN a binary file of many lines, and a file of events with one broken line among several
    binary = tmp_path / "program"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00binary\x00\n" * 40 + b"\x00\xff\xfe more\n" * 20)
    mostly_good = tmp_path / "good.ndjson"
    mostly_good.write_bytes(ndjson(*(make_event() for _ in range(3))) + b"{broken\n")
    # WHEN each is ingested
    result = eventpipe("ingest", str(binary), data_dir=tmp_path / "data")
    good = eventpipe("ingest", str(mostly_good), data_dir=tmp_path / "data")
    # THEN the binary one gets one warning saying it does not look like JSON; the other none
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"eventpipe: warning: {binary}: 60 of 60 lines are not JSON; it does not look like JSON or NDJSON"
    ]
    assert "warning" not in good.stderr


def readable_part(damaged: bytes) -> bytes:
    """What a gzip stream cut short decompresses to before the cut (zlib, independently of eventpipe)."""
    inflater = zlib.decompressobj(wbits=31)  # gzip framing
    return inflater.decompress(damaged)


def test_a_truncated_gzip_file_keeps_every_complete_event_before_the_damage(tmp_path: Path) -> None:
    # GIVEN a gzip file of 1,500 events cut short: whole lines survive up to a point, then half a line
    events = [make_event() for _ in range(1500)]
    whole = gzip.compress(ndjson(*events), mtime=0)
    cut = tmp_path / "cut.ndjson.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    complete = gzip.decompress(whole)
    readable = readable_part(cut.read_bytes())
    kept = readable.count(b"\n")  # the complete lines before the damage
    assert 0 < kept < 1500
    assert complete.startswith(readable)
    # WHEN it is ingested, twice
    first = eventpipe("ingest", "--json", str(cut), data_dir=tmp_path / "data")
    second = eventpipe("ingest", "--json", str(cut), data_dir=tmp_path / "data")
    # THEN every complete event before the damage is curated, the cut line is not counted, and it says how many
    assert first.returncode == 1
    assert orjson.loads(first.stdout) == {"received": kept, "curated": kept, "duplicates": 0, "rejected": {}}
    assert "the gzip stream breaks off" in first.stderr
    assert f"kept the {kept:,} events before it" in first.stderr
    # AND the same every time: the second run finds the same batches done
    assert orjson.loads(second.stdout) == orjson.loads(first.stdout)


def test_insights_prints_lag_with_thousands_separators(tmp_path: Path) -> None:
    source = tmp_path / "old.ndjson"
    source.write_bytes(ndjson(make_event()))  # an event of 2026-11-28: aggregated long after it occurred
    data = tmp_path / "data"
    eventpipe("ingest", str(source), data_dir=data)
    text = eventpipe("insights", "--since", "2026-11-28T05:30:00Z", "--until", "2026-11-28T06:30:00Z", data_dir=data)
    lag = next(line for line in text.stdout.splitlines() if line.startswith("lag ms"))
    assert "," in lag.split("p50=")[1], lag

"""`eventpipe erase`: every trace of a user's events leaves every file of the data directory."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow.parquet as pq
import pytest

from eventpipe.core.enrich.pseudonymise import pseudonym
from eventpipe.erasure import run as erasure_run
from eventpipe.erasure.run import erase_user, resume_erasures
from eventpipe.lake.cli import before_processing
from eventpipe.lake.query import run_query
from eventpipe.localrun.runtime import LocalRuntime
from tests.conftest import make_event, ndjson
from tests.functional.test_cli import eventpipe
from tests.lake.conftest import ingest

if TYPE_CHECKING:
    from pathlib import Path

    from eventpipe.lake.writer import LakeWriter
    from eventpipe.settings import Settings

VICTIM = "victim-5d1f"
VICTIM_ANON = "anon-5d1f"


def victim_events() -> list[Any]:
    """The user's events: curated ones, a schema violation, a malformed line, and an anonymous one."""
    anonymous = make_event("signup", anonymous_id=VICTIM_ANON)
    del anonymous["user_id"]
    return [
        *[make_event("page_view", user_id=VICTIM) for _ in range(4)],
        make_event("purchase", user_id=VICTIM, properties={"order_id": "o-9"}),  # no revenue: rejected
        f'{{"event_id": "cut", "user_id": "{VICTIM}", '.encode(),  # malformed JSON
        anonymous,
    ]


def files_holding(root: Path, *ids: str) -> list[str]:
    """Every file under `root` whose bytes (gunzipped, and a Parquet file's values, too) hold any of the ids:
    zstd pages can hide an id from a search of the bytes alone."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data.startswith(b"\x1f\x8b"):
            data += gzip.decompress(data)
        if data.startswith(b"PAR1"):
            data += orjson.dumps(pq.read_table(path).to_pylist(), default=str)
        if any(i.encode() in data for i in ids):
            found.append(str(path.relative_to(root)))
    return found


def seed(runtime: LocalRuntime, lake: LakeWriter) -> None:
    others = [make_event(user_id=f"other-{i}") for i in range(20)]
    ingest(runtime, *others[:10], *victim_events(), *others[10:])
    ingest(runtime, make_event(user_id=VICTIM))  # a second batch, its own segment
    lake.sync()
    # files dropped and read (processed/), one gzip, one a JSON document, and one not read yet
    processed = runtime.bucket.root / "processed"
    processed.mkdir()
    (processed / "drop.ndjson.gz").write_bytes(gzip.compress(ndjson(*victim_events(), *others[:3])))
    (processed / "doc.json").write_bytes(orjson.dumps({"events": [make_event(user_id=VICTIM), others[4]]}))
    (runtime.bucket.root / "incoming" / "later.ndjson").write_bytes(ndjson(others[5], make_event(user_id=VICTIM)))


def test_erase_leaves_no_trace_in_any_file_and_keeps_the_others(runtime: LocalRuntime, lake: LakeWriter) -> None:
    # GIVEN a user's events in the raw bucket, dropped files, the curated store, the quarantine and the lake
    seed(runtime, lake)
    data_dir = runtime.settings.data_dir
    assert files_holding(data_dir, VICTIM, VICTIM_ANON)
    before = run_query(data_dir, "SELECT count(*) FROM events").rows[0][0]
    # WHEN the user is erased
    result = erase_user(runtime, [VICTIM], [VICTIM_ANON])
    # THEN 6 curated events and 2 quarantine records went, and no file holds either id
    assert result.events_erased == 6 + 2
    assert result.files_rewritten >= 6  # raw batches, segments, the lake file, three dropped files
    assert files_holding(data_dir, VICTIM, VICTIM_ANON) == []
    # AND every other event is still there, in the lake and in the dropped files
    assert run_query(data_dir, "SELECT count(*) FROM events").rows[0][0] == before - 6
    assert runtime.curated.count() == 20
    assert runtime.quarantine.count() == 0
    doc = orjson.loads((runtime.bucket.root / "processed" / "doc.json").read_bytes())
    assert [e["user_id"] for e in doc["events"]] == ["other-4"]
    kept = gzip.decompress((runtime.bucket.root / "processed" / "drop.ndjson.gz").read_bytes()).splitlines()
    assert [orjson.loads(line)["user_id"] for line in kept] == ["other-0", "other-1", "other-2"]
    # AND the erasure is logged with its counts, not the id
    (line,) = (data_dir / "erasures" / "log.ndjson").read_bytes().splitlines()
    logged = orjson.loads(line)
    assert sorted(logged) == ["events_erased", "files_rewritten", "finished_at", "started_at"]
    assert (logged["events_erased"], logged["files_rewritten"]) == (8, result.files_rewritten)
    assert logged["started_at"] <= logged["finished_at"]
    assert not list((data_dir / "erasures").glob("pending-*"))


def test_erased_events_sent_again_are_a_new_event_not_a_duplicate(runtime: LocalRuntime, lake: LakeWriter) -> None:
    event = make_event(user_id=VICTIM)
    ingest(runtime, event)
    erase_user(runtime, [VICTIM], [])
    ingest(runtime, event)  # the user comes back: their new events are theirs to send
    lake.sync()
    assert run_query(runtime.settings.data_dir, "SELECT count(*) FROM events").rows[0][0] == 1


def test_with_pseudonymisation_the_stored_hmac_is_matched(tmp_path: Path, settings: Settings) -> None:
    # GIVEN user ids stored as their HMAC
    from dataclasses import replace

    from eventpipe.lake.writer import LakeWriter

    enrichment = replace(settings.enrichment, pseudonymise_fields=("user_id",), pseudonym_key=b"k" * 32)
    runtime = LocalRuntime(replace(settings, enrichment=enrichment))
    try:
        lake = LakeWriter(runtime.db, runtime.segments, runtime.settings.data_dir / "lake", runtime.clock)
        ingest(runtime, make_event(user_id=VICTIM), make_event(user_id="other"))
        lake.sync()
        hmac_of_victim = pseudonym(b"k" * 32, VICTIM)
        stored = {row[0] for row in run_query(runtime.settings.data_dir, "SELECT user_id FROM events").rows}
        assert hmac_of_victim in stored
        assert VICTIM not in stored
        # WHEN erased by the original id
        result = erase_user(runtime, [VICTIM], [])
        # THEN the pseudonymised event went, and neither the id nor its HMAC is in any file
        assert result.events_erased == 1
        assert files_holding(runtime.settings.data_dir, VICTIM, hmac_of_victim) == []
        assert run_query(runtime.settings.data_dir, "SELECT count(*) FROM events").rows[0][0] == 1
    finally:
        runtime.close()


def test_an_erasure_without_the_key_the_events_were_pseudonymised_with_is_refused(tmp_path: Path) -> None:
    # GIVEN events whose user ids were stored as pseudonyms of key one
    data_dir = tmp_path / "data"
    (tmp_path / "in.ndjson").write_bytes(ndjson(make_event(user_id=VICTIM), make_event()))
    key_one = {"EVENTPIPE_PSEUDONYMISE_FIELDS": "user_id", "EVENTPIPE_PSEUDONYM_KEY": "one" * 11}
    assert eventpipe("ingest", str(tmp_path / "in.ndjson"), data_dir=data_dir, env=key_one).returncode == 0
    # WHEN the user is erased without the key, or with another one
    for env, why in [
        ({}, "set EVENTPIPE_PSEUDONYM_KEY to the key they were written with"),
        ({**key_one, "EVENTPIPE_PSEUDONYM_KEY": "two" * 11}, "with another key than EVENTPIPE_PSEUDONYM_KEY"),
    ]:
        result = eventpipe("erase", "--user-id", VICTIM, "--json", data_dir=data_dir, env=env)
        # THEN the erasure stops with a line saying why, instead of matching the id in clear only
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.startswith("eventpipe: error: events here were pseudonymised")
        assert why in result.stderr
        assert not list(data_dir.glob("erasures/pending-*"))
    # AND with the key it erases the user's event
    result = eventpipe("erase", "--user-id", VICTIM, "--json", data_dir=data_dir, env=key_one)
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["events_erased"] == 1
    assert files_holding(data_dir, pseudonym(("one" * 11).encode(), VICTIM)) == []


def test_a_replayed_then_released_quarantine_record_leaves_no_copy_in_free_pages(
    runtime: LocalRuntime, lake: LakeWriter
) -> None:
    # GIVEN a quarantine record deleted without secure_delete (a replay releasing it leaves its bytes)
    ingest(runtime, make_event("purchase", user_id=VICTIM, properties={"order_id": "o-9"}))
    with runtime.db.transaction() as conn:
        conn.execute("DELETE FROM quarantine")
    with runtime.db.reading() as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert files_holding(runtime.settings.data_dir, VICTIM)
    # WHEN the user is erased THEN the database file is rebuilt without the freed page
    erase_user(runtime, [VICTIM], [])
    assert files_holding(runtime.settings.data_dir, VICTIM) == []


@pytest.mark.parametrize("stage", ["_segments", "_curated_and_quarantine", "_lake", "_scrub_sqlite"])
def test_a_crash_part_way_is_finished_at_the_next_start(
    runtime: LocalRuntime, lake: LakeWriter, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    # GIVEN an erasure that dies at `stage`
    seed(runtime, lake)

    def crash(*_args: object) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(erasure_run, stage, crash)
    with pytest.raises(SystemExit):
        erase_user(runtime, [VICTIM], [VICTIM_ANON])
    monkeypatch.undo()
    assert list((runtime.settings.data_dir / "erasures").glob("pending-*"))
    # WHEN a process starts (it finishes the erasure before anything else) and the lake catches up
    before_processing(runtime)
    lake.sync()
    # THEN nothing of the user is back
    assert files_holding(runtime.settings.data_dir, VICTIM, VICTIM_ANON) == []
    assert resume_erasures(runtime) == 0


def test_an_unknown_user_changes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (tmp_path / "in.ndjson").write_bytes(ndjson(make_event(), make_event()))
    assert eventpipe("ingest", str(tmp_path / "in.ndjson"), data_dir=data_dir).returncode == 0

    def snapshot() -> dict[str, bytes]:
        return {
            str(p.relative_to(data_dir)): p.read_bytes()
            for p in data_dir.rglob("*")
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))
        }

    before = snapshot()
    result = eventpipe("erase", "--user-id", "nobody-here", "--json", data_dir=data_dir)
    assert result.returncode == 0  # the request is met: nothing of that user is stored
    assert result.stderr == "eventpipe: no event of that user is stored: nothing was changed\n"
    assert orjson.loads(result.stdout) == {"events_erased": 0, "files_rewritten": 0}
    assert snapshot() == before
    result = eventpipe("erase", "--anonymous-id", "nobody-here", data_dir=data_dir)
    assert result.returncode == 0
    assert result.stdout.split() == ["events", "erased", "0", "files", "rewritten", "0"]
    assert "nothing was changed" in result.stderr
    assert snapshot() == before


def test_the_command_line_erases_and_checks_its_input(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (tmp_path / "in.ndjson").write_bytes(ndjson(make_event(user_id=VICTIM), make_event()))
    assert eventpipe("ingest", str(tmp_path / "in.ndjson"), data_dir=data_dir).returncode == 0
    result = eventpipe("erase", "--user-id", VICTIM, "--json", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["events_erased"] == 1
    assert VICTIM not in result.stderr
    assert eventpipe("erase", data_dir=data_dir).returncode == 2
    assert eventpipe("erase", "--user-id", "x" * 257, data_dir=data_dir).returncode == 2
    not_text = subprocess.run(  # command-line bytes that are not UTF-8
        [sys.executable, "-m", "eventpipe", "erase", "--user-id", b"\xff"],
        env={**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (not_text.returncode, not_text.stderr) == (
        2,
        "eventpipe: error: --user-id must be UTF-8 text, as events are\n",
    )
    assert not list(data_dir.glob("erasures/pending-*"))
    missing = eventpipe("erase", "--user-id", "a", data_dir=tmp_path / "none")
    assert missing.returncode == 2
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_kill_9_during_erasure_then_a_restart_leaves_no_erased_event(tmp_path: Path) -> None:
    # GIVEN a store of 10,000 events, 100 of them the user's, and an erasure killed part way
    data_dir = tmp_path / "data"
    events = [make_event(user_id=VICTIM if i % 100 == 0 else f"u-{i}") for i in range(10_000)]
    (tmp_path / "in.ndjson").write_bytes(ndjson(*events))
    assert eventpipe("ingest", str(tmp_path / "in.ndjson"), data_dir=data_dir).returncode == 0
    env = {**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "eventpipe", "erase", "--user-id", VICTIM], env=env, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60

    def journalled() -> bool:  # the entry written, not only created: a kill before that erased nothing
        try:
            return any(p.stat().st_size > 0 for p in data_dir.glob("erasures/pending-*"))
        except FileNotFoundError:  # finished between the listing and the look
            return True

    while not journalled() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # killed once it has begun (journalled): what it erased so far is on disk
    assert journalled()
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # WHEN the next command that processes runs (here a replay with nothing to replay)
    assert eventpipe("replay", data_dir=data_dir).returncode == 0
    # THEN no event of the user is anywhere, and every other one is in the lake
    assert files_holding(data_dir, VICTIM) == []
    counted = eventpipe("query", "SELECT count(*) AS n FROM events", "--json", data_dir=data_dir)
    assert orjson.loads(counted.stdout) == [{"n": 9_900}]
    assert (
        str(uuid.UUID(events[1]["event_id"]))
        in eventpipe("query", "SELECT event_id FROM events", "--csv", data_dir=data_dir).stdout
    )


def test_dropped_files_of_every_form_are_rewritten_and_a_broken_gzip_does_not_stop_the_erasure() -> None:
    from eventpipe.erasure import rewrite
    from eventpipe.erasure.target import ErasureTarget

    target = ErasureTarget.of([VICTIM], [], None)
    mine, other = make_event(user_id=VICTIM), make_event(user_id="someone")
    limit = 1 << 20
    assert rewrite.dropped_file(orjson.dumps([mine, other]), target, max_bytes=limit) == orjson.dumps([other])
    assert rewrite.dropped_file(orjson.dumps(mine), target, max_bytes=limit) == b""
    assert rewrite.dropped_file(orjson.dumps([other]), target, max_bytes=limit) is None
    assert rewrite.dropped_file(ndjson(other, mine, other), target, max_bytes=limit) == ndjson(other, other)
    # a gzip stream cut short: what can be read of it is rewritten; one that is not gzip at all is
    # dropped only when it shows the id
    cut = rewrite.dropped_file(gzip.compress(ndjson(mine, other))[:-12], target, max_bytes=limit)
    assert cut is not None
    assert VICTIM.encode() not in gzip.decompress(cut)
    assert rewrite.dropped_file(b"\x1f\x8b garbage " + VICTIM.encode(), target, max_bytes=limit) is None
    assert rewrite.dropped_file(b'\x1f\x8b garbage "' + VICTIM.encode() + b'"', target, max_bytes=limit) == b""
    too_big = gzip.compress(ndjson(*[mine] * 100))
    assert rewrite.dropped_file(too_big, target, max_bytes=100) is None  # its id is not visible unzipped


def test_a_group_raw_batch_keeps_its_requests_and_members_pointing_at_their_events() -> None:
    from eventpipe.core.rawbatch import RawBatch
    from eventpipe.core.request_facts import RequestFacts
    from eventpipe.erasure import rewrite
    from eventpipe.erasure.target import ErasureTarget

    # GIVEN a group of two requests: [other, mine, other] then [mine, other]
    events = [make_event(user_id=u) for u in ("a", VICTIM, "b", VICTIM, "c")]
    facts_one, facts_two = RequestFacts(app_id="one"), RequestFacts(app_id="two")
    batch = RawBatch(
        "g-1",
        "http",
        0,
        events=[orjson.dumps(e) for e in events],
        positions=[0, 1, 2, 0, 1],
        requests=[(0, facts_one), (3, facts_two)],
        members=[("m-1", 0), ("m-2", 3)],
    )
    # WHEN the user's events are removed
    rewritten = rewrite.raw_batch(batch.encode(), ErasureTarget.of([VICTIM], [], None))
    assert rewritten is not None
    after = RawBatch.decode(rewritten)
    # THEN each request and member still starts at its first remaining event
    assert [orjson.loads(e)["user_id"] for e in after.events] == ["a", "b", "c"]
    assert after.positions == [0, 2, 1]
    assert after.requests == [(0, facts_one), (2, facts_two)]
    assert after.members == [("m-1", 0), ("m-2", 2)]
    assert [f.app_id for f in after.facts_by_event()] == ["one", "one", "two"]


def test_a_replay_that_rejects_the_event_again_has_its_own_raw_batch_rewritten(
    runtime: LocalRuntime, lake: LakeWriter
) -> None:
    from eventpipe.handlers.replay import replay_quarantine

    # GIVEN the user's rejected event replayed and rejected again: the replay's raw batch holds its text,
    # and the quarantine record keeps the first batch's id
    ingest(runtime, make_event("purchase", user_id=VICTIM, properties={"order_id": "o-9"}), make_event(user_id="o"))
    assert replay_quarantine(runtime).batches == 1
    replays = [key for key in runtime.bucket.keys("raw/") if "replay-" in key]
    assert replays
    assert all(VICTIM.encode() in runtime.bucket.get(key) for key in replays)
    # WHEN the user is erased THEN no raw object, the replay's included, holds the id
    assert erase_user(runtime, [VICTIM], []).events_erased == 1
    assert [key for key in runtime.bucket.keys("raw/") if VICTIM.encode() in runtime.bucket.get(key)] == []
    assert files_holding(runtime.settings.data_dir, VICTIM) == []


ODD_IDS = ['José "Pepe" / Ñ 😀', "a\\b\tc", "日本語ユーザー", "'; DROP TABLE curated; --", "x" * 256]


@pytest.mark.parametrize("user_id", ODD_IDS)
def test_an_id_written_with_json_escapes_is_erased_everywhere(tmp_path: Path, user_id: str) -> None:
    # GIVEN the user's events as an ASCII-only encoder writes them (Python's json: "é" as \u00e9, and here
    # "/" as \/ too): curated, rejected by the schema, malformed, and in a dropped file; and someone else's
    def escaped(event: Any) -> bytes:
        return json.dumps(event).replace("/", "\\/").encode()

    mine = [make_event(user_id=user_id), make_event("purchase", user_id=user_id, properties={"order_id": "o-9"})]
    others = [make_event(user_id="someone"), make_event(user_id="someone-else")]
    malformed = b'{"event_id": "cut", "user_id": ' + json.dumps(user_id).encode() + b", "
    source = tmp_path / "in.ndjson"
    source.write_bytes(b"\n".join([*map(escaped, mine + others), malformed]) + b"\n")
    data_dir = tmp_path / "data"
    assert eventpipe("ingest", str(source), data_dir=data_dir).returncode == 0
    processed = data_dir / "bucket" / "processed"
    processed.mkdir()
    (processed / "drop.ndjson.gz").write_bytes(gzip.compress(b"\n".join(map(escaped, mine + others))))
    ascii_only = json.dumps(user_id)[1:-1]
    forms = [orjson.dumps(user_id).decode()[1:-1], ascii_only, ascii_only.replace("/", "\\/")]
    # WHEN the user is erased, as an operator types the id
    result = eventpipe("erase", "--user-id", user_id, "--json", data_dir=data_dir)
    # THEN the curated event and the two quarantine records went, and no file holds the id in any form
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["events_erased"] == 3
    assert files_holding(data_dir, *forms) == []
    # AND the others' events stay, in the lake and in the dropped file
    kept = eventpipe("query", "SELECT user_id FROM events ORDER BY 1", "--json", data_dir=data_dir)
    assert orjson.loads(kept.stdout) == [{"user_id": "someone"}, {"user_id": "someone-else"}]
    lines = gzip.decompress((processed / "drop.ndjson.gz").read_bytes()).splitlines()
    assert [orjson.loads(line)["user_id"] for line in lines] == ["someone", "someone-else"]


def test_a_staged_object_left_by_an_earlier_version_loses_the_users_events(
    runtime: LocalRuntime, lake: LakeWriter
) -> None:
    # GIVEN a staged object (a header of facts, then one payload a line) holding the user's event and another
    ingest(runtime, make_event(user_id=VICTIM))
    mine, other = make_event(user_id=VICTIM), make_event(user_id="someone")
    header = {"facts": [{"event_id": mine["event_id"]}, {"event_id": other["event_id"]}]}
    runtime.bucket.put(
        "staged/b-old.ndjson", b"\n".join([orjson.dumps(header), orjson.dumps(mine), orjson.dumps(other)])
    )
    # WHEN the user is erased
    erase_user(runtime, [VICTIM], [])
    # THEN the object keeps the other event and its fact, in step
    head, *payloads = runtime.bucket.get("staged/b-old.ndjson").split(b"\n")
    assert orjson.loads(head) == {"facts": [{"event_id": other["event_id"]}]}
    assert [orjson.loads(p)["user_id"] for p in payloads] == ["someone"]
    assert files_holding(runtime.settings.data_dir, VICTIM) == []


def test_aggregates_stay_after_an_erasure(tmp_path: Path) -> None:
    # GIVEN the user's events and someone else's, counted in the per-minute insights (events of the last hour)
    now = time.time()
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    events = [make_event("page_view", user_id=VICTIM, occurred_at=at) for _ in range(3)]
    events += [make_event("page_view", user_id="someone", occurred_at=at) for _ in range(2)]
    (tmp_path / "in.ndjson").write_bytes(ndjson(*events))
    data_dir = tmp_path / "data"
    assert eventpipe("ingest", str(tmp_path / "in.ndjson"), data_dir=data_dir).returncode == 0
    window = ("--since", time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(now - 3600)))
    window += ("--until", time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(now + 120)))
    before = eventpipe("insights", *window, "--json", data_dir=data_dir)
    assert before.returncode == 0, before.stderr
    # WHEN the user is erased
    assert eventpipe("erase", "--user-id", VICTIM, data_dir=data_dir).returncode == 0
    # THEN the insights are the same (counts and sketches hold no ids), the lake holds the other's two events
    after = eventpipe("insights", *window, "--json", data_dir=data_dir)
    assert orjson.loads(after.stdout) == orjson.loads(before.stdout)
    assert orjson.loads(before.stdout)["totals"]["events"] == 5
    assert orjson.loads(before.stdout)["totals"]["unique_users"] == 2
    counted = eventpipe("query", "SELECT count(*) AS n FROM events", "--json", data_dir=data_dir)
    assert orjson.loads(counted.stdout) == [{"n": 2}]


def test_an_id_sent_as_a_number_is_erased_and_other_lines_holding_its_digits_stay(tmp_path: Path) -> None:
    # GIVEN the user's events with the id as text (curated) and as a JSON number (rejected by the schema),
    # and someone else's: curated, and malformed, each holding the id's digits elsewhere
    number = 4815162342
    mine = [make_event(user_id=str(number)), {**make_event(), "user_id": number}]
    others = [make_event(user_id="someone", session_id=f"s-{number}")]
    malformed = b'{"event_id": "cut", "user_id": "someone", "n": ' + str(number).encode() + b", "
    source = tmp_path / "in.ndjson"
    source.write_bytes(b"\n".join([*map(orjson.dumps, mine + others), malformed]) + b"\n")
    data_dir = tmp_path / "data"
    assert eventpipe("ingest", str(source), data_dir=data_dir).returncode == 0
    # WHEN the user is erased
    result = eventpipe("erase", "--user-id", str(number), "--json", data_dir=data_dir)
    # THEN their curated event and their rejected one went; the others' two events stay
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["events_erased"] == 2
    kept = eventpipe("query", "SELECT user_id FROM events", "--json", data_dir=data_dir)
    assert orjson.loads(kept.stdout) == [{"user_id": "someone"}]
    rejected = eventpipe("query", "SELECT raw FROM rejected", "--json", data_dir=data_dir)
    assert [row["raw"].encode() for row in orjson.loads(rejected.stdout)] == [malformed]
    raw = [line for path in (data_dir / "bucket" / "raw").rglob("*") if path.is_file() for line in [path.read_bytes()]]
    assert not any(b'"user_id":' + str(number).encode() in data.replace(b" ", b"") for data in raw)

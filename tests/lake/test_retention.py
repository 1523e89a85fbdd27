"""Retention: expired data leaves the hot stores and the lake; the deduplication window that follows."""

from __future__ import annotations

import os
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson
import pytest

from eventpipe.adapters.local.database import SCHEMA_VERSION, Database
from eventpipe.core.errors import ConfigError
from eventpipe.lake.query import run_query
from eventpipe.lake.retention import DAY_MS, apply_retention
from eventpipe.lake.settings import LakeSettings
from tests.conftest import make_event, ndjson
from tests.functional.test_cli import eventpipe
from tests.lake.conftest import ingest

if TYPE_CHECKING:
    from pathlib import Path

    from eventpipe.lake.writer import LakeWriter
    from eventpipe.localrun.runtime import LocalRuntime

HOT = LakeSettings(retention_days=7)


def _lake_count(runtime: LocalRuntime) -> int:
    return int(run_query(runtime.settings.data_dir, "SELECT count(*) FROM events").rows[0][0])


def test_the_dedup_window_is_the_retention_of_the_curated_store(runtime: LocalRuntime, lake: LakeWriter) -> None:
    # GIVEN an event curated on day 0, and an invalid one quarantined with it
    event = make_event()
    ingest(runtime, event, {"event_id": "x", "event_type": "nope"})
    # WHEN it is sent again on day 6: within the window, a duplicate
    runtime.clock.now += 6 * DAY_MS  # type: ignore[attr-defined]
    apply_retention(runtime, HOT)
    ingest(runtime, event)
    assert runtime.curated.count() == 1
    # WHEN it is sent again on day 8, after retention ran: curated again (the window has passed)
    runtime.clock.now += 2 * DAY_MS  # type: ignore[attr-defined]
    held = apply_retention(runtime, HOT)
    assert held is not None
    assert held.batches == 0  # not in the lake yet: nothing expires before it is
    lake.sync()
    result = apply_retention(runtime, HOT, force=True)
    assert result is not None
    assert (result.batches, result.curated, result.quarantined) == (1, 1, 1)  # day 0's batch; day 6's stays
    assert runtime.quarantine.count() == 0
    assert len(list(runtime.bucket.keys("raw/"))) == 1
    ingest(runtime, event)
    assert runtime.curated.count() == 1
    assert runtime.curated.get(event["event_id"]) is not None
    # AND the lake, kept longer, holds both copies (each curated once)
    lake.sync()
    assert _lake_count(runtime) == 2


def test_retention_runs_once_a_day(runtime: LocalRuntime) -> None:
    assert apply_retention(runtime, HOT) is not None
    runtime.clock.now += DAY_MS - 1  # type: ignore[attr-defined]
    assert apply_retention(runtime, HOT) is None
    runtime.clock.now += 1  # type: ignore[attr-defined]
    assert apply_retention(runtime, HOT) is not None
    assert apply_retention(runtime, LakeSettings()) is None  # not configured


def test_old_dropped_files_go_and_recent_ones_stay(runtime: LocalRuntime) -> None:
    processed = runtime.bucket.root / "processed"
    processed.mkdir()
    (processed / "old.ndjson").write_bytes(b"{}\n")
    (processed / "new.ndjson").write_bytes(b"{}\n")
    old_s = (runtime.clock.now_ms() - 8 * DAY_MS) / 1000
    os.utime(processed / "old.ndjson", (old_s, old_s))
    new_s = runtime.clock.now_ms() / 1000
    os.utime(processed / "new.ndjson", (new_s, new_s))
    result = apply_retention(runtime, HOT)
    assert result is not None
    assert result.dropped_files == 1
    assert [p.name for p in processed.iterdir()] == ["new.ndjson"]


def test_lake_days_older_than_the_lake_retention_go(runtime: LocalRuntime, lake: LakeWriter) -> None:
    # GIVEN events of 2026-11-28 and 2026-11-20 in the lake
    ingest(runtime, make_event(), make_event(occurred_at="2026-11-20T10:00:00Z"))
    lake.sync()
    # WHEN the lake keeps 5 days (now is 2026-11-28T06:00Z: the first day kept is 2026-11-23)
    result = apply_retention(runtime, LakeSettings(lake_retention_days=5))
    # THEN the old day's files and folder are gone, the recent day stays, the hot store is untouched
    assert result is not None
    assert result.lake_files == 1
    assert _lake_count(runtime) == 1
    assert not (lake.root / "dt=2026-11-20").exists()
    assert runtime.curated.count() == 2


def test_expired_rows_are_found_by_their_batches_rowids_not_by_a_scan(runtime: LocalRuntime) -> None:
    # GIVEN a batch of three events on day 0, another on day 1, and one of one event on day 9
    for _ in range(2):
        ingest(runtime, make_event(), make_event(), make_event())
        runtime.clock.now += DAY_MS  # type: ignore[attr-defined]
    kept = make_event()
    runtime.clock.now += 7 * DAY_MS  # type: ignore[attr-defined]
    ingest(runtime, kept)
    # WHEN retention runs, every statement it sends traced
    statements: list[str] = []
    with runtime.db.reading() as conn:
        conn.set_trace_callback(statements.append)
    try:
        result = apply_retention(runtime, LakeSettings(enabled=False, retention_days=7))
    finally:
        with runtime.db.reading() as conn:
            conn.set_trace_callback(None)
    # THEN the two old batches' rows went, the new one's stayed
    assert result is not None
    assert (result.batches, result.curated) == (2, 6)
    assert runtime.curated.count() == 1
    assert runtime.curated.get(kept["event_id"]) is not None
    # AND no statement read the whole curated table: each found its rows by rowid
    touching = [s for s in statements if re.search(r"\bcurated\b", s)]
    assert any(s.startswith("DELETE FROM curated") for s in touching)
    with runtime.db.reading() as conn:
        plans = {s: [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {s}")] for s in touching}
    assert not {s: plan for s, plan in plans.items() if any(step.startswith("SCAN curated") for step in plan)}
    # AND the batches' rowid ranges and runs went with them
    with runtime.db.reading() as conn:
        for table in ("curated_rowids", "curated_batches"):
            assert conn.execute(f"SELECT COUNT(DISTINCT batch_id) FROM {table}").fetchone()[0] == 1, table


def test_a_database_of_schema_7_gains_the_rowids_of_its_batches(tmp_path: Path) -> None:
    # GIVEN a database as schema 7 left it: curated rows, no table of their batches' rowids
    path = tmp_path / "eventpipe.db"
    Database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE curated_rowids")
        conn.executemany(
            "INSERT INTO curated (id, event_id, batch_id, event_type, idx, run) VALUES (?, ?, ?, 'signup', 0, 0)",
            [(n, os.urandom(16), batch) for n, batch in ((1, "a"), (2, "a"), (3, "b"), (4, "a"), (7, "c"))],
        )
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    # WHEN this version opens it
    database = Database(path)
    # THEN each batch has the range of its rows (a's holds b's row: retention deletes by batch within it)
    with database.reading() as conn:
        ranges = conn.execute("SELECT batch_id, first_id, last_id FROM curated_rowids ORDER BY batch_id").fetchall()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    database.close()
    assert ranges == [("a", 1, 4), ("b", 3, 3), ("c", 7, 7)]
    assert version == SCHEMA_VERSION


def test_a_pending_batch_never_expires(runtime: LocalRuntime) -> None:
    ingest(runtime, make_event())
    with runtime.db.transaction() as conn:
        conn.execute("UPDATE batches SET status = 'failed'")
    runtime.clock.now += 30 * DAY_MS  # type: ignore[attr-defined]
    result = apply_retention(runtime, HOT)
    assert result is not None
    assert result.batches == 0
    assert len(list(runtime.bucket.keys("raw/"))) == 1


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("x", "is not a whole number"),
        ("0", "must be greater than 0"),
        ("-3", "must be greater than 0"),
        ("36501", "is above the most allowed, 36500"),
        ("30d", "is not a whole number"),
    ],
)
def test_bad_retention_settings_name_the_variable(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"^EVENTPIPE_LAKE_RETENTION_DAYS=.*{problem}$"):
        LakeSettings.from_env({"EVENTPIPE_LAKE_RETENTION_DAYS": value})
    assert LakeSettings.from_env({"EVENTPIPE_RETENTION_DAYS": " 30 "}).retention_days == 30
    assert LakeSettings.from_env({"EVENTPIPE_RETENTION_DAYS": " "}).retention_days is None
    with pytest.raises(ConfigError, match="EVENTPIPE_LAKE"):
        LakeSettings.from_env({"EVENTPIPE_LAKE": "maybe"})


def test_a_command_that_writes_applies_the_retention_settings_at_its_start(tmp_path: Path) -> None:
    # GIVEN a data directory with events of today and of 20 days ago in the lake, and an old dropped file
    now = datetime.now(UTC)
    old = make_event(occurred_at=(now - timedelta(days=20)).isoformat())
    recent = make_event(occurred_at=(now - timedelta(minutes=1)).isoformat())
    (tmp_path / "in.ndjson").write_bytes(ndjson(old, recent))
    data_dir = tmp_path / "data"
    assert eventpipe("ingest", str(tmp_path / "in.ndjson"), data_dir=data_dir).returncode == 0
    processed = data_dir / "bucket" / "processed"
    processed.mkdir()
    (processed / "old.ndjson").write_bytes(ndjson(old))
    ten_days_ago = (now - timedelta(days=10)).timestamp()
    os.utime(processed / "old.ndjson", (ten_days_ago, ten_days_ago))
    # WHEN the next command that writes starts (a replay with nothing to replay), with both settings
    env = {"EVENTPIPE_RETENTION_DAYS": "7", "EVENTPIPE_LAKE_RETENTION_DAYS": "7"}
    assert eventpipe("replay", data_dir=data_dir, env=env).returncode == 0
    # THEN the lake's old day and the old dropped file are gone; today's event and batch stay
    counted = eventpipe("query", "SELECT event_id FROM events", "--json", data_dir=data_dir)
    assert orjson.loads(counted.stdout) == [{"event_id": recent["event_id"]}]
    assert not processed.joinpath("old.ndjson").exists()
    assert len(list((data_dir / "bucket" / "raw").iterdir())) == 1

"""kill -9 of `eventpipe ingest` at each point between the curated store's commit and the lake's,
and during the compaction of the hour it wrote: a run again leaves every curated event in the lake
exactly once.

The process is really killed (SIGKILL, sent by itself at that point): no `finally`, no rollback in
Python, only what the kernel and SQLite leave.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from typing import TYPE_CHECKING

import orjson
import pytest

from tests.conftest import make_event, ndjson
from tests.functional.test_cli import eventpipe

if TYPE_CHECKING:
    from pathlib import Path

EVENTS = 250
CHUNK_ROWS = 100  # three chunks in the killed run: three files in the events' hour

# Run in the killed process: the ingest of the file, with a SIGKILL at `point`.
_KILLED_INGEST = """
import os, signal, sys
from eventpipe import cli
from eventpipe.lake import writer
from eventpipe.lake.manifest import LakeManifest

writer.CHUNK_ROWS = {chunk_rows}
writer.COMPACT_AT_FILES = 3  # the killed run's three files of one hour are merged at its end
point = {point!r}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "before the lake":  # every batch committed, no lake file yet
    writer.LakeWriter.sync = lambda self, **kw: die()
elif point == "after a file, before its listing":
    real_write = writer.write_parquet
    writer.write_parquet = lambda path, table: (real_write(path, table), die())
elif point == "after the first chunk's listing":
    real_commit = LakeManifest.commit_chunk
    LakeManifest.commit_chunk = lambda self, *a: (real_commit(self, *a), die())
elif point == "compaction: merged file written, not swapped":
    LakeManifest.swap = lambda self, *a: die()
elif point == "compaction: swapped, inputs not deleted":
    real_swap = LakeManifest.swap
    LakeManifest.swap = lambda self, *a: (real_swap(self, *a), die())
sys.exit(cli.main(["ingest", {source!r}]))
"""


def _lake(data_dir: Path) -> dict[str, int]:
    result = eventpipe(
        "query", "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events", "--json", data_dir=data_dir
    )
    assert result.returncode == 0, result.stderr
    row: dict[str, int] = orjson.loads(result.stdout)[0]
    return row


def _files(data_dir: Path) -> set[str]:
    return {p.relative_to(data_dir / "lake").as_posix() for p in (data_dir / "lake").rglob("*.parquet")}


def _listed(data_dir: Path) -> set[str]:
    """The lake's manifest: the files queries may read (live) or were reading (retired)."""
    with closing(sqlite3.connect(data_dir / "eventpipe.db")) as db:
        return {str(row[0]) for row in db.execute("SELECT path FROM lake_files")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "listed_before_restart"),
    [
        ("before the lake", 0),
        ("after a file, before its listing", 0),
        ("after the first chunk's listing", CHUNK_ROWS),
        ("compaction: merged file written, not swapped", EVENTS),  # a query reads the three inputs
        ("compaction: swapped, inputs not deleted", EVENTS),  # a query reads the merged file only
    ],
)
def test_kill_9_between_the_curated_commit_and_the_lake_then_a_run_again_leaves_each_event_once(
    tmp_path: Path, point: str, listed_before_restart: int
) -> None:
    # GIVEN an ingest killed with SIGKILL at `point`, after its batches were curated
    source = tmp_path / "events.ndjson"
    source.write_bytes(ndjson(*[make_event() for _ in range(EVENTS)]))
    data_dir = tmp_path / "data"
    env = {**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir), "EVENTPIPE_LAKE": "on"}
    script = _KILLED_INGEST.format(chunk_rows=CHUNK_ROWS, point=point, source=str(source))
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # THEN queries see only what the lake listed before the kill (an unlisted file is invisible)
    assert _lake(data_dir) == {"n": listed_before_restart, "d": listed_before_restart}
    if point in ("after a file, before its listing", "compaction: merged file written, not swapped"):
        assert _files(data_dir) - _listed(data_dir)  # there, on disk
    # WHEN the same file is ingested again (a file it knows: no event curated twice), which brings the
    # lake up to date
    again = eventpipe("ingest", str(source), "--json", data_dir=data_dir)
    assert again.returncode == 0, again.stderr
    # THEN every curated event is in the lake once, and no file is left that the lake does not list
    assert _lake(data_dir) == {"n": EVENTS, "d": EVENTS}
    assert _files(data_dir) == _listed(data_dir)  # the file the kill left unlisted is gone

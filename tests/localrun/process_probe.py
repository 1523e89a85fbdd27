"""What the tests of `eventpipe up` read from outside the server: its processes (through /proc) and
its SQLite store (read-only, while it runs)."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson

WORKER_MARK = b"spawn_main"  # the worker is a `spawn` child; the other child is multiprocessing's resource tracker
LAKE_PROCESS_NAME = "eventpipe-lake"  # the server's other `spawn` child names itself so


def rss_mib(pid: int) -> float:
    """The resident memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:  # the thread ended while we looked
            continue
    return found


def worker_pid(server_pid: int) -> int | None:
    """The worker process of the server, if it has one now."""
    found = _spawned(server_pid)
    return next((pid for pid, name in found if name != LAKE_PROCESS_NAME), None)


def lake_pid(server_pid: int) -> int | None:
    """The lake process of the server (localrun/lake_process.py), if it has one now: it names itself."""
    found = _spawned(server_pid)
    return next((pid for pid, name in found if name == LAKE_PROCESS_NAME), None)


def _spawned(pid: int) -> list[tuple[int, str]]:
    """A process's `spawn` children, and their names (/proc/<pid>/comm)."""
    found = []
    for child in children(pid):
        try:
            if WORKER_MARK in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append((child, Path(f"/proc/{child}/comm").read_text().strip()))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def query(data_dir: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows from the server's SQLite store, read on a connection of our own (WAL lets us read while it writes)."""
    with closing(sqlite3.connect(f"file:{data_dir / 'eventpipe.db'}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql, args).fetchall()


def curated_count(data_dir: Path) -> int:
    return int(query(data_dir, "SELECT COUNT(*) FROM curated")[0][0])


def curated_ids(data_dir: Path) -> list[str]:
    """The event id of every curated record (repeats kept, so a test can see one)."""
    return [str(uuid.UUID(bytes=bytes(row[0]))) for row in query(data_dir, "SELECT event_id FROM curated")]


def batches_of_source(data_dir: Path, source: str) -> list[dict[str, Any]]:
    """The batch records cut from one input (`s3:incoming/<name>` for a file drop)."""
    rows = query(
        data_dir,
        "SELECT batch_id, status, received, curated, duplicates, rejected_by_code FROM batches WHERE source = ?",
        source,
    )
    return [
        {
            "batch_id": r[0],
            "status": r[1],
            "received": r[2],
            "curated": r[3],
            "duplicates": r[4],
            "rejected": sum(orjson.loads(r[5]).values()),
        }
        for r in rows
    ]


def runner_pids(worker: int) -> list[int]:
    """The runner processes of a worker (localrun/runners.py): its `spawn` children."""
    found = []
    for child in children(worker):
        try:
            if WORKER_MARK in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found

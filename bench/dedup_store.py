"""Does the dedup store's cost grow with the store? `put_new` throughput with 0, 1M and 10M events stored.

    python bench/dedup_store.py [--stored 0,1000000,10000000] [--batches 200] [--cache-mib 4]

For each size, a fresh store is filled directly in SQLite (ids in sorted order, so the fill takes
seconds, not the hours of random inserts), then a child process opens it as `eventpipe` does
(`Database`, `SqliteCuratedStore`, the default 4 MiB page cache) and stores `--batches` batches of
500 random ids, 5% of them already stored (a client's retries): that process's CPU time, wall
time, peak memory and bytes written per event (WAL, checkpoints and segment files) are the row.
Bounded: 10M rows fill in about a minute and take 0.5 GB of disk, removed after the run.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from summary import record

BATCH = 500
FILL_CHUNK = 200_000


def fill(path: Path, stored: int, seed: int, days: int) -> None:
    """`stored` random ids in the store's own schema, inserted in key order (a compact index), spread
    over the `days` days before today (closed runs; 0: all in today's run, the one being written)."""
    from eventpipe.adapters.local.database import Database
    from eventpipe.adapters.local.dedup_runs import DAY_MS

    Database(path).close()  # creates the schema exactly as eventpipe does
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")  # 256 MiB for the fill only
    rnd = random.Random(seed)
    today = time.time_ns() // 1_000_000 // DAY_MS
    runs = [(today - days + day) << 10 for day in range(days)] or [today << 10]
    per_run = -(-max(stored, 1) // len(runs))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO curated_runs (run, ids, token) VALUES (?, ?, ?)",
        [(run, min(per_run, max(stored - n * per_run, 0)), f"fill{n}") for n, run in enumerate(runs) if stored],
    )
    if days and stored:  # today's run has begun: the past days' runs are closed, as in a store running since
        conn.execute("INSERT INTO curated_runs (run, ids, token) VALUES (?, 0, 'today')", (today << 10,))
    # Evenly spread sorted keys within each run: the n-th of a run's ids is about n/per_run of the key space.
    step = (1 << 128) // per_run
    for start in range(0, stored, FILL_CHUNK):
        rows = [
            (
                ((n % per_run) * step + rnd.getrandbits(64)).to_bytes(16, "big"),
                f"fill-{n // BATCH}",
                "page_view",
                n % BATCH,
                runs[n // per_run],
            )
            for n in range(start, min(start + FILL_CHUNK, stored))
        ]
        conn.executemany("INSERT INTO curated (event_id, batch_id, event_type, idx, run) VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def build_filter(path: Path) -> None:
    """As a restart with a lost filter file (or the first start after the migration) does: builds and saves it."""
    from eventpipe.adapters.local.bucket import FolderBucket
    from eventpipe.adapters.local.curated import FILTER_FILE, SqliteCuratedStore
    from eventpipe.adapters.local.database import Database

    db = Database(path)
    store = SqliteCuratedStore(db, FolderBucket(path.parent / "segments", ()), filter_path=path.parent / FILTER_FILE)
    store.owners(["00000000-0000-4000-8000-000000000000"])
    db.close()


def measure(path: str, stored: int, batches: int, cache_mib: int, seed: int) -> None:
    """In the child: put_new on `batches` batches; prints its figures as JSON."""
    from eventpipe.adapters.local.bucket import FolderBucket
    from eventpipe.adapters.local.curated import FILTER_FILE, SqliteCuratedStore
    from eventpipe.adapters.local.database import Database

    db_path = Path(path)
    segments = FolderBucket(db_path.parent / "segments", ())
    store = SqliteCuratedStore(
        Database(db_path, cache_mib=cache_mib), segments, filter_path=db_path.parent / FILTER_FILE
    )
    rnd = random.Random(seed + 1)
    payload = b"x" * 600
    batch_list = []
    for number in range(batches):
        events = []
        for index in range(BATCH):
            # 5%: a retry of an event stored earlier (one of the filled ids, taken below)
            retry = stored and rnd.random() < 0.05
            events.append((None if retry else rnd.getrandbits(128).to_bytes(16, "big"), index))
        batch_list.append((f"bench-{number}", events))
    existing = _some_stored_ids(db_path, stored, batches * BATCH // 10, rnd) if stored else []
    store.owners(["00000000-0000-4000-8000-000000000000"])  # loads the saved filter, as a running process has
    written = _bytes_written()
    started_cpu, started = time.process_time(), time.perf_counter()
    for batch_id, events in batch_list:
        rows = []
        for key, _ in events:
            if key is None:
                key = existing.pop() if existing else rnd.getrandbits(128).to_bytes(16, "big")
            text = key.hex()
            rows.append((f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}", "page_view", payload))
        store.put_new(batch_id, rows)
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    written = _bytes_written() - written
    events = batches * BATCH
    peak_mib = _peak_mib()
    print(orjson.dumps({"cpu": cpu, "wall": wall, "events": events, "peak_mib": peak_mib, "written": written}).decode())


def _peak_mib() -> float:
    """This process's peak resident memory. VmHWM starts again at exec; ru_maxrss would carry the parent's."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _bytes_written() -> int:
    """Bytes this process passed to write() (WAL, checkpoints, segment files): Linux's /proc/self/io."""
    try:
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    except OSError:
        return 0
    return int(fields["wchar"])


def _some_stored_ids(path: Path, stored: int, count: int, rnd: random.Random) -> list[bytes]:
    """Ids of `count` stored rows picked by rowid (no sort of the whole table, which would cost memory)."""
    conn = sqlite3.connect(path)
    found = []
    for rowid in rnd.sample(range(1, stored + 1), min(count, stored)):
        row = conn.execute("SELECT event_id FROM curated WHERE id = ?", (rowid,)).fetchone()
        found.append(bytes(row[0]))
    conn.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stored", default="0,1000000,10000000", help="comma-separated sizes of the store")
    parser.add_argument("--batches", type=int, default=200, help="batches of 500 stored per size")
    parser.add_argument("--cache-mib", type=int, default=4, help="the store's page cache (EVENTPIPE_SQLITE_CACHE_MIB)")
    parser.add_argument(
        "--fill-days", type=int, default=30, help="the stored ids were received over this many days (0: all today)"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.child[0], int(args.child[1]), args.batches, args.cache_mib, seed=7)
        return
    print(
        f"\ndedup store: put_new of {args.batches} batches of {BATCH} ids (5% already stored), "
        f"{args.cache_mib} MiB page cache"
    )
    header = f"{'stored':>12}{'fill s':>8}{'filter s':>10}{'events/s/core':>15}{'events/s wall':>15}"
    print(f"{header}{'KiB written/event':>19}{'peak MiB':>10}")
    rows: dict[int, dict[str, float]] = {}
    for stored in (int(size) for size in args.stored.split(",")):
        with tempfile.TemporaryDirectory(prefix="eventpipe-dedup-") as tmp:
            path = Path(tmp) / "eventpipe.db"
            started = time.perf_counter()
            fill(path, stored, seed=7, days=args.fill_days)
            fill_s = time.perf_counter() - started
            started = time.perf_counter()
            build_filter(path)
            filter_s = time.perf_counter() - started
            command = [sys.executable, __file__, "--batches", str(args.batches), "--cache-mib", str(args.cache_mib)]
            done = subprocess.run([*command, "--child", str(path), str(stored)], capture_output=True, check=True)
            row = rows[stored] = orjson.loads(done.stdout)
        print(
            f"{stored:>12,}{fill_s:>8.0f}{filter_s:>10.1f}"
            f"{row['events'] / row['cpu']:>15,.0f}{row['events'] / row['wall']:>15,.0f}"
            f"{row['written'] / row['events'] / 1024:>19.1f}{row['peak_mib']:>10.0f}"
        )
    print("peak MiB: the measuring process's maximum resident set (the fill runs in another process).")
    _record_growth(rows)


def _record_growth(rows: dict[int, dict[str, float]]) -> None:
    """For `make bench`: each size's CPU and bytes per event against the empty store's (flat: near 1)."""
    empty = rows.get(0)
    if empty is None:
        return
    for stored, row in rows.items():
        if stored == 0:
            continue
        per_core, written = row["events"] / row["cpu"], row["written"] / row["events"] / 1024
        baseline_per_core, baseline_written = empty["events"] / empty["cpu"], empty["written"] / empty["events"] / 1024
        record(
            f"dedup store, {stored:,} stored: events/s per core",
            per_core,
            baseline=baseline_per_core,
            target=">= 0.9 of an empty store",  # flat, within the noise
            met=per_core >= 0.9 * baseline_per_core,
        )
        record(
            f"dedup store, {stored:,} stored: KiB written per event",
            written,
            baseline=baseline_written,
            target="<= 1.1 of an empty store",
            met=written <= 1.1 * baseline_written,
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()

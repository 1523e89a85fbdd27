"""Does the dedup store's cost grow with the store? `put_new` throughput with 0, 10k, 1M and 10M events stored.

    python bench/dedup_store.py [--stored 0,10000,1000000,10000000] [--baseline-stored 10000] [--batches 200]
                                [--repeat 3] [--cache-mib 4] [--turn-batches 5]

Growth is read against a small store of the same shape (`--baseline-stored`: its ids received over
the same days, so it has closed runs, their filter, and old ids re-sent), not against the empty
store: an empty store has no closed run, so it pays neither the filter's probe nor the old ids'
index probes, about 10% of its cost whatever the size (docs/benchmark.md, "Growth, not the first
closed run"). The ratio to the empty store is printed and recorded beside, with no target.

For each size, a fresh store is filled directly in SQLite (ids in sorted order, so the fill takes
seconds, not the hours of random inserts) and made durable, and its filter built as a first start
does. Then, `--repeat` times, for each state of the pages (below), a child process per size opens
its store as `eventpipe` does (`Database`, `SqliteCuratedStore`, the default 4 MiB page cache) and
stores `--batches` batches of 500 random ids, 5% of them already stored (a client's retries). The
children of one repeat run at the same time and take turns (`--turn-batches` batches each, the
next round starting at the next size): each one's CPU time, wall time, peak memory and bytes
written per event (WAL, checkpoints and segment files) are counted over its own batches, so the
sizes compared are measured over the same seconds, and a neighbour's load on this shared machine
reaches them alike (measured one process after the other, seconds apart, one repeat's ratio to the
baseline ranged from 0.4 to 1.5: docs/benchmark.md, "Seventh round"). Each row is the median of its repeats
(each repeat adds its batches to the same store, put back as filled after it). Memory: the peak
resident set (VmHWM), and after the batches, the store still open, its private part (RssAnon) and
its file-backed part (RssFile: the mapped filter, the libraries). Bounded: 10M rows fill in about a
minute and take 0.9 GB of disk, removed after the run.

Where the database's pages are when the processes start is set, not left to chance (`--store-pages`):
`cached`, each file read whole into the OS's page cache just before (as a machine with the memory
to spare keeps it), and `evicted`, the file dropped from it (as after a machine's page-out of idle
memory, or for a store larger than its memory: each old re-sent id's probe then reads its pages
from the disk). Each is compared with the empty store in the same state. Left as the time since
the fill leaves them, the figure drifted from repeat to repeat on a machine that pages idle
memory out (docs/benchmark.md, "Fifth round"). The targets are read in the `cached` state; the
`evicted` ratio is printed and recorded beside them, with none."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    if _has_batch_runs(conn):
        conn.execute("INSERT INTO curated_batches (batch_id, run) SELECT DISTINCT batch_id, run FROM curated")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    # On disk before the measurement, as a store filled over days is: else the first checkpoint
    # measured also flushes the fill's dirty pages (0.5 µs per event at 10M, none at 0).
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def _has_batch_runs(conn: sqlite3.Connection) -> bool:
    """Schema 7 and later (the code measured may be older: a `git archive` of it on PYTHONPATH)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'curated_batches'").fetchone() is not None


def build_filter(path: Path) -> None:
    """As a restart with a lost filter file (or the first start after the migration) does: builds and saves it."""
    from eventpipe.adapters.local.bucket import FolderBucket
    from eventpipe.adapters.local.curated import FILTER_FILE, SqliteCuratedStore
    from eventpipe.adapters.local.database import Database

    db = Database(path)
    store = SqliteCuratedStore(db, FolderBucket(path.parent / "segments", ()), filter_path=path.parent / FILTER_FILE)
    store.owners(["00000000-0000-4000-8000-000000000000"])
    db.close()


class Snapshot:
    """A filled store as the measurement found it, to put back before the next repeat (each repeat
    starts from the same store: else today's run would grow by the batches of each repeat)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        conn = sqlite3.connect(path)
        self.rowid = conn.execute("SELECT COALESCE(MAX(id), 0) FROM curated").fetchone()[0]
        self.runs = conn.execute("SELECT run, ids, token FROM curated_runs").fetchall()
        conn.close()
        self.filter = (path.parent / "dedup.filter").read_bytes() if (path.parent / "dedup.filter").exists() else None

    def restore(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("BEGIN")
        conn.execute("DELETE FROM curated WHERE id > ?", (self.rowid,))  # the measured rows: after the fill's
        if _has_batch_runs(conn):
            conn.execute("DELETE FROM curated_batches WHERE batch_id LIKE 'bench-%'")
        conn.execute("DELETE FROM curated_runs")
        conn.executemany("INSERT INTO curated_runs (run, ids, token) VALUES (?, ?, ?)", self.runs)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        with open(self.path, "rb") as file:
            os.fsync(file.fileno())
        if self.filter is not None:  # replaced, not rewritten in place, as the store does (its file is mapped)
            temporary = self.path.parent / ".dedup.filter.restore"
            temporary.write_bytes(self.filter)
            temporary.replace(self.path.parent / "dedup.filter")
        for segment in (self.path.parent / "segments").glob("bench-*"):
            segment.unlink()


def measure(path: str, stored: int, batches: int, cache_mib: int, seed: int, old_retries: float = 1.0) -> None:
    """In the child: put_new on `batches` batches, one each time the parent says so (a line on stdin),
    answering `done` (stdout); then prints its figures as JSON, counted over its batches only. A
    re-sent id is, with probability `old_retries`, one of the filled ids (none when nothing is
    stored), else one sent in the last ten batches (a client's retry minutes later: in the current run)."""
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
    batch_list: list[tuple[str, list[tuple[bytes | None, int]]]] = []
    recent: list[bytes] = []
    for number in range(batches):
        events: list[tuple[bytes | None, int]] = []
        for index in range(BATCH):
            # 5%: a retry of an event stored earlier (an old one is one of the filled ids, taken below)
            retry = rnd.random() < 0.05
            if retry and rnd.random() < old_retries:
                events.append((None, index) if stored else (rnd.getrandbits(128).to_bytes(16, "big"), index))
            elif retry and recent:
                events.append((recent[rnd.randrange(len(recent))], index))
            else:
                events.append((rnd.getrandbits(128).to_bytes(16, "big"), index))
        recent = [key for _, events_of in batch_list[-9:] for key, _ in events_of if key is not None]
        recent += [key for key, _ in events if key is not None]
        batch_list.append((f"bench-{seed}-{number}", events))
    existing = _some_stored_ids(db_path, stored, batches * BATCH // 10, rnd) if stored else []
    store.owners(["00000000-0000-4000-8000-000000000000"])  # loads the saved filter, as a running process has
    cpu = wall = 0.0
    written = 0
    _say("ready")
    for batch_id, events in batch_list:
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("the parent stopped before the last batch")
        before_written = _bytes_written()
        started_cpu, started = time.process_time(), time.perf_counter()
        rows = []
        for key, _ in events:
            if key is None:
                key = existing.pop() if existing else rnd.getrandbits(128).to_bytes(16, "big")
            text = key.hex()
            rows.append((f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}", "page_view", payload))
        store.put_new(batch_id, rows)
        cpu += time.process_time() - started_cpu
        wall += time.perf_counter() - started
        written += _bytes_written() - before_written
        _say("done")
    figures = {"cpu": cpu, "wall": wall, "events": batches * BATCH, "written": written}
    for name, field in (("peak_mib", "VmHWM"), ("anon_mib", "RssAnon"), ("file_mib", "RssFile")):
        figures[name] = _status_mib(field)
    _say(orjson.dumps(figures).decode())


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def measure_together(
    command: list[str], members: dict[int, Path], repeat: int, batches: int, turn: int
) -> dict[int, dict[str, float]]:
    """One child per store (`members`: size -> database), all started before any is measured, then
    taking turns of `turn` batches (each round starting at the next store): the stores' figures of
    one repeat are measured over the same seconds, so a neighbour's load reaches them all alike. Each
    child is still one process with one store, as `eventpipe` runs it. Not a switch every batch: each
    switch costs the process woken some hundreds of µs (its caches filled again): every store 2 to 19%
    slower, the same cost at each size pulling the ratios towards 1 (docs/benchmark.md, "Seventh round")."""
    children: dict[int, tuple[subprocess.Popen[str], Any]] = {}
    with contextlib.ExitStack() as logs:
        for stored, path in members.items():
            log = logs.enter_context(tempfile.TemporaryFile("w+"))  # the child's stderr: shown if it fails
            child = subprocess.Popen(
                [*command, "--child", str(path), str(stored), str(repeat)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
            children[stored] = (child, log)
            logs.callback(_stop, child)
        for stored in children:
            _expect(children[stored], "ready")
        order = list(children)
        for number, first in enumerate(range(0, batches, turn)):
            shift = number % len(order)
            for stored in order[shift:] + order[:shift]:
                child = children[stored][0]
                assert child.stdin is not None
                for _ in range(min(turn, batches - first)):
                    child.stdin.write("go\n")
                    child.stdin.flush()
                    _expect(children[stored], "done")
        figures = {stored: orjson.loads(_expect(children[stored], None)) for stored in children}
        for child, _ in children.values():
            if child.wait(timeout=60) != 0:
                raise RuntimeError(f"a measuring child failed: exit {child.returncode}")
        return figures


def _stop(child: subprocess.Popen[str]) -> None:
    """A child still running when the measurement failed: stopped (the parent's own child, by its handle)."""
    if child.poll() is None:
        child.kill()
        child.wait()


def _expect(member: tuple[subprocess.Popen[str], Any], expected: str | None) -> str:
    """The child's next line (`expected`, when given); its stderr in the error when it stopped."""
    child, log = member
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if not line or (expected is not None and line != expected):
        child.kill()
        child.wait()
        log.seek(0)
        raise RuntimeError(f"a measuring child stopped ({line!r}, exit {child.returncode}):\n{log.read()}")
    return line


def _status_mib(field: str) -> float:
    """A memory figure of this process (Linux): VmHWM, the peak resident set, starts again at exec
    (ru_maxrss, the fallback, would carry the parent's); RssAnon is the private part of the resident
    set, RssFile the part mapped from files (page cache: shared, dropped under memory pressure)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if field == "VmHWM" else float("nan")
    line = next(line for line in status.splitlines() if line.startswith(f"{field}:"))
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
    parser.add_argument("--stored", default="0,10000,1000000,10000000", help="comma-separated sizes of the store")
    parser.add_argument(
        "--baseline-stored",
        type=int,
        default=10_000,
        help="the size the larger stores' growth is read against (added to --stored if missing)",
    )
    parser.add_argument("--batches", type=int, default=200, help="batches of 500 stored per size")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each size, alternating (median)")
    parser.add_argument("--cache-mib", type=int, default=4, help="the store's page cache (EVENTPIPE_SQLITE_CACHE_MIB)")
    parser.add_argument(
        "--fill-days", type=int, default=30, help="the stored ids were received over this many days (0: all today)"
    )
    parser.add_argument(
        "--old-retries",
        type=float,
        default=1.0,
        help="share of the re-sent ids that are old (filled, uniformly: the worst case), not of the last minutes",
    )
    parser.add_argument(
        "--store-pages",
        default="cached,evicted",
        help="comma-separated states of the database's pages in the OS's page cache when a process starts: "
        "cached (read whole just before), evicted (dropped)",
    )
    parser.add_argument(
        "--turn-batches",
        type=int,
        default=5,
        help="batches each store's process stores in its turn before the next store's (1: a switch every batch)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.turn_batches < 1:
        parser.error(f"--turn-batches takes a positive number, not {args.turn_batches}")
    if args.child:
        # Each repeat its own ids and batch ids: the same ones again would be this batch's retries.
        seed = 7 + 1000 * int(args.child[2])
        measure(args.child[0], int(args.child[1]), args.batches, args.cache_mib, seed, args.old_retries)
        return
    print(
        f"\ndedup store: put_new of {args.batches} batches of {BATCH} ids (5% already stored, "
        f"{args.old_retries:.0%} of them old), {args.cache_mib} MiB page cache, median of {args.repeat}"
    )
    sizes = sorted({int(size) for size in args.stored.split(",")} | {args.baseline_stored})
    states = args.store_pages.split(",")
    if not set(states) <= {"cached", "evicted"}:
        parser.error(f"--store-pages takes cached and evicted, not {args.store_pages}")
    if "evicted" in states and not hasattr(os, "posix_fadvise"):
        print("the evicted state is not measured: this system has no posix_fadvise")
        states = [state for state in states if state != "evicted"] or ["cached"]
    with tempfile.TemporaryDirectory(prefix="eventpipe-dedup-") as tmp:
        paths, setup = {}, {}
        for stored in sizes:
            path = paths[stored] = Path(tmp) / str(stored) / "eventpipe.db"
            path.parent.mkdir()
            started = time.perf_counter()
            fill(path, stored, seed=7, days=args.fill_days)
            fill_s = time.perf_counter() - started
            started = time.perf_counter()
            build_filter(path)
            setup[stored] = (fill_s, time.perf_counter() - started)
        snapshots = {stored: Snapshot(paths[stored]) for stored in sizes}
        command = [sys.executable, __file__, "--batches", str(args.batches), "--cache-mib", str(args.cache_mib)]
        command += ["--old-retries", str(args.old_retries)]
        runs: dict[str, dict[int, list[dict[str, float]]]] = {
            state: {stored: [] for stored in sizes} for state in states
        }
        for repeat in range(args.repeat):
            # The states alternate which goes first; within a state, the sizes take turns (measure_together).
            for state in states[repeat % len(states) :] + states[: repeat % len(states)]:
                for stored in sizes:
                    place_pages(paths[stored], state)
                measured = measure_together(command, paths, repeat, args.batches, args.turn_batches)
                for stored in sizes:
                    runs[state][stored].append(measured[stored])
                    snapshots[stored].restore()
        filter_mib = {stored: _file_mib(paths[stored].parent / "dedup.filter") for stored in sizes}
    header = f"{'stored':>12}{'pages':>9}{'fill s':>8}{'filter s':>10}{'events/s/core':>15}{'events/s wall':>15}"
    header += f"{'x empty':>9}{'x base':>8}{'KiB written/event':>19}{'peak MiB':>10}{'private':>9}{'mapped':>8}"
    print(f"{header}{'filter MiB':>12}")
    for state in states:
        measured = runs[state]
        for stored in sizes:
            ratio = _paired_ratio(measured[stored], measured[0], "per_core") if 0 in measured else float("nan")
            growth = _paired_ratio(measured[stored], measured[args.baseline_stored], "per_core")
            print(
                f"{stored:>12,}{state:>9}{setup[stored][0]:>8.0f}{setup[stored][1]:>10.1f}"
                f"{_median(measured[stored], 'per_core'):>15,.0f}{_median(measured[stored], 'per_wall'):>15,.0f}"
                f"{ratio:>9.2f}{growth:>8.2f}{_median(measured[stored], 'kib_per_event'):>19.1f}"
                f"{_median(measured[stored], 'peak_mib'):>10.0f}{_median(measured[stored], 'anon_mib'):>9.0f}"
                f"{_median(measured[stored], 'file_mib'):>8.0f}{filter_mib[stored]:>12.1f}"
            )
    print("Each figure the median of its repeats. pages: where the database's pages were when the process")
    print("started (cached: in the OS's page cache; evicted: on the disk only). x empty, x base: CPU throughput")
    print(f"as a ratio to the empty store's and to the {args.baseline_stored:,}-id store's. peak MiB: the measuring")
    print("process's maximum resident set (the fill runs in another process); private and mapped: its resident")
    print("set after the batches, the part of its own (RssAnon) and the part mapped from files (RssFile: the")
    print("libraries, the filter's pages); filter MiB: the closed runs' filter file, mapped while the store runs.")
    if "cached" in runs:
        _record_growth(runs["cached"], args.baseline_stored)
    if "evicted" in runs:
        _record_evicted(runs["evicted"], args.baseline_stored)


def place_pages(path: Path, state: str) -> None:
    """Before a measured process: the database file read whole into the OS's page cache (`cached`), or
    dropped from it (`evicted`: its pages are clean, the restore before fsynced them)."""
    with open(path, "rb") as file:
        if state == "evicted":
            os.fsync(file.fileno())
            os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            return
        buffer = bytearray(1 << 20)
        while file.readinto(buffer):
            pass


def _median(measured: list[dict[str, float]], figure: str) -> float:
    values = sorted(_figures(row)[figure] for row in measured)
    return values[len(values) // 2]


def _paired_ratio(measured: list[dict[str, float]], baseline: list[dict[str, float]], figure: str) -> float:
    """The median of each repeat's ratio to the baseline store's run of the same repeat."""
    ratios = sorted(
        _figures(row)[figure] / _figures(base)[figure] for row, base in zip(measured, baseline, strict=True)
    )
    return ratios[len(ratios) // 2]


def _figures(row: dict[str, float]) -> dict[str, float]:
    return {
        "per_core": row["events"] / row["cpu"],
        "per_wall": row["events"] / row["wall"],
        "kib_per_event": row["written"] / row["events"] / 1024,
        "peak_mib": row["peak_mib"],
        "anon_mib": row["anon_mib"],
        "file_mib": row["file_mib"],
    }


def _record_evicted(runs: dict[int, list[dict[str, float]]], baseline_stored: int) -> None:
    """For `make bench`: each larger size's CPU against the baseline store's with the databases' pages on
    the disk only, no target (each old re-sent id's probe reads its pages from the disk: an I/O cost)."""
    base = runs[baseline_stored]
    for stored, measured in runs.items():
        if stored > baseline_stored:
            _record_cpu(f"dedup store, {stored:,} stored, its pages evicted: events/s per core", measured, base)


def _record_cpu(name: str, measured: list[dict[str, float]], baseline: list[dict[str, float]]) -> None:
    """A CPU figure against a baseline, with no target."""
    value, base = _median(measured, "per_core"), _median(baseline, "per_core")
    record(name, value, baseline=base, ratio=_paired_ratio(measured, baseline, "per_core"), target="", met=None)


def _file_mib(path: Path) -> float:
    return path.stat().st_size / (1 << 20) if path.exists() else 0.0


def _record_growth(runs: dict[int, list[dict[str, float]]], baseline_stored: int) -> None:
    """For `make bench`: each larger size's CPU, bytes per event and private memory against the
    baseline store's (flat: near 1), as the median of the ratios of each repeat (the sizes of one
    repeat measured taking turns); the peak resident set too, and the CPU against the empty
    store's, with no target (the peak counts the filter's mapped pages)."""
    base = runs[baseline_stored]
    empty = runs.get(0)
    small = f"a {baseline_stored:,}-id store"
    for stored, measured in runs.items():
        if stored <= baseline_stored:
            continue
        for figure, name, target, at_most in (
            ("per_core", "events/s per core", f">= 0.9 of {small}", False),  # flat, within the noise
            ("kib_per_event", "KiB written per event", f"<= 1.1 of {small}", True),
            ("anon_mib", "private memory MiB", f"<= 1.1 of {small}", True),
            ("peak_mib", "peak resident MiB, with the mapped filter", "", None),
        ):
            ratio = _paired_ratio(measured, base, figure)
            record(
                f"dedup store, {stored:,} stored: {name}",
                _median(measured, figure),
                baseline=_median(base, figure),
                ratio=ratio,
                target=target,
                met=None if at_most is None else ratio <= 1.1 if at_most else ratio >= 0.9,
            )
        if empty is not None:
            _record_cpu(f"dedup store, {stored:,} stored: events/s per core x an empty store", measured, empty)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()

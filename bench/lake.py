"""`make bench`: the lake's cost and speed.

1. The chain with the lake on, as a ratio to the chain without it (`EVENTPIPE_LAKE=off`): the same
   generated stream ingested by `eventpipe ingest` (which writes the lake after the chain, before it
   answers), lake off and on alternating `--repeat` times (off on, on off, ...). Each run also notes
   its CPU time when the chain is done (`sync_lake` called), so a lake-on run splits into its chain
   and its lake. The ratio is the chain's CPU over the whole run's, both from the same lake-on run
   (the part after the chain that a lake-off run has too, closing the stores and exiting, counted as
   the chain's): the machine's speed here changes by 20% from one minute to the next, and a ratio of
   two runs took that change in as the lake's. The ratio of neighbouring runs' throughputs is shown
   beside it, and the on runs' chains against the off runs' (the lake must not slow the chain
   itself). Events per CPU second; per wall second shown too. Target: at least 0.85.
2. The sizes per million curated events of the stores (SQLite, curated segments, raw bucket) and of
   the lake, from the last lake-on run.
3. `eventpipe query` over 10,000,000 events, a count by type per day: target under 2 s. Running the
   chain over 10M events would take about half an hour here, so this lake is generated directly with
   pyarrow (same schema, one file per hour over 10 days, as compaction leaves it) and listed in the
   manifest; the time is the whole command's, process start included, median of 3.

As in `bench/run.py`, each command's modules are compiled to bytecode once beforehand (a warm-up
run of each), as an installed package has them: where PYTHONDONTWRITEBYTECODE is set, every run
compiled them again, the lake's own modules and pyarrow's only in the lake-on runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from run import Run, compile_once, generate, measure, median_run
from summary import record

from eventpipe.lake.columns import LAKE_SCHEMA
from eventpipe.lake.files import write_parquet
from eventpipe.lake.manifest import LakeFile, LakeManifest
from eventpipe.localrun.runtime import LocalRuntime
from eventpipe.settings import Settings

TARGET_RATIO = 0.85
TARGET_QUERY_S = 2.0
QUERY = "SELECT dt, event_type, count(*) AS events FROM events GROUP BY ALL ORDER BY ALL"
HOUR_MS = 3_600_000


# `python -m eventpipe ingest`, noting the process's CPU time (user and system) when the chain is done:
# when the command calls `sync_lake`, which returns at once with the lake off.
_INGEST_NOTING_THE_CHAIN = """
import os, resource, sys
from eventpipe import cli

def chain_done():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["LAKE_BENCH_CHAIN_CPU"], "w") as out:
        out.write(repr(usage.ru_utime + usage.ru_stime))

def sync_lake(runtime, sync=cli.sync_lake):
    chain_done()
    return sync(runtime)

cli.sync_lake = sync_lake
sys.exit(cli.main())
"""


@dataclass
class Split:
    """A run, and its CPU seconds up to the end of the chain."""

    run: Run
    chain_cpu_s: float

    @property
    def after_chain_s(self) -> float:
        return self.run.cpu_s - self.chain_cpu_s


def ingest(path: Path, events: int, data_dir: Path, lake: str) -> Split:
    mark = data_dir.with_name(f"{data_dir.name}.chain-cpu")
    env = {**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir), "EVENTPIPE_LAKE": lake, "LAKE_BENCH_CHAIN_CPU": str(mark)}
    command = [sys.executable, "-c", _INGEST_NOTING_THE_CHAIN, "ingest", str(path), "--json"]
    run = measure(f"lake {lake}", events, command, env)
    chain_cpu_s = float(mark.read_text())
    mark.unlink()
    return Split(run, chain_cpu_s)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def chain(work: Path, events: int, repeat: int) -> None:
    source = work / "events.ndjson"
    generate(source, events, seed=11)
    warm_up = work / "warm-up.ndjson"
    generate(warm_up, 200, seed=7)
    for lake in ("off", "on"):  # compiles the modules each side imports, for the runs below
        ingest(warm_up, 200, work / f"data-warm-up-{lake}", lake)
        shutil.rmtree(work / f"data-warm-up-{lake}", ignore_errors=True)
    runs: dict[str, list[Split]] = {"off": [], "on": []}
    for number in range(repeat):
        # off on, on off, ...: a machine getting faster or slower over the sitting favours neither side
        for lake in ("off", "on") if number % 2 == 0 else ("on", "off"):
            data_dir = work / f"data-{lake}-{number}"
            runs[lake].append(ingest(source, events, data_dir, lake))
            if lake == "on" and number == repeat - 1:
                sizes(data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)
    report(events, repeat, runs["off"], runs["on"])


def report(events: int, repeat: int, offs: list[Split], ons: list[Split]) -> None:
    pairs = list(zip(ons, offs, strict=True))
    # What a run does after its chain without the lake (closing the stores, exiting) is the chain's.
    closing_s = statistics.median(off.after_chain_s for off in offs)
    in_run = [(on.chain_cpu_s + closing_s) / on.run.cpu_s for on in ons]
    cpu = statistics.median(in_run)
    neighbours = statistics.median(off.run.cpu_s / on.run.cpu_s for on, off in pairs)
    wall = statistics.median(on.run.per_wall / off.run.per_wall for on, off in pairs)
    chains = statistics.median(on.chain_cpu_s / off.chain_cpu_s for on, off in pairs)
    lake_us = statistics.median((on.after_chain_s - closing_s) / events * 1e6 for on in ons)
    print(f"chain, {events:,} events, {repeat} runs each (events/s, median run):")
    for name, group in (("off", offs), ("on", ons)):
        middle = median_run([split.run for split in group])
        print(f"  lake {name:<4} {middle.per_core:>9,.0f} per CPU second  {middle.per_wall:>9,.0f} per wall second")
    print(f"  the lake's CPU per input event (on runs, after their chain): median {lake_us:.2f} µs")
    print(f"  on runs' chain / off runs' chain (neighbours): {chains:.3f}")
    print(
        f"  lake on / off, each run's chain over the whole run: {', '.join(f'{r:.3f}' for r in in_run)};"
        f" neighbouring runs: {', '.join(f'{off.run.cpu_s / on.run.cpu_s:.3f}' for on, off in pairs)}"
    )
    verdict = "meets" if cpu >= TARGET_RATIO else "misses"
    print(
        f"  lake on / off: {cpu:.3f} by CPU (median; {neighbours:.3f} by neighbouring runs), {wall:.3f} by wall clock"
        f" ({verdict} the target {TARGET_RATIO})"
    )
    on = statistics.median(split.run.per_core for split in ons)
    off = statistics.median(split.run.per_core for split in offs)
    record(
        "chain with the lake (events/s per core)",
        on,
        baseline=off,
        ratio=cpu,
        target=f">= {TARGET_RATIO} x off",
        met=cpu >= TARGET_RATIO,
    )


def sizes(data_dir: Path) -> None:
    from eventpipe.lake.query import run_query

    curated = int(run_query(data_dir, "SELECT count(*) FROM events").rows[0][0])
    per_million = 1_000_000 / curated
    parts = {
        "SQLite (index, quarantine, batches, insights)": sum(p.stat().st_size for p in data_dir.glob("eventpipe.db*")),
        "curated segments": folder_bytes(data_dir / "curated"),
        "raw bucket": folder_bytes(data_dir / "bucket"),
        "lake (Parquet, zstd)": folder_bytes(data_dir / "lake"),
    }
    hours = len(list((data_dir / "lake").glob("dt=*/hour=*")))
    # The stream covers the 30 minutes before the run (by corrected event time): one hour or two.
    print(f"sizes per million curated events (from {curated:,}, over {hours} hour partition(s)):")
    for name, size in parts.items():
        print(f"  {name:<48}{size * per_million / 2**20:>9,.0f} MiB")


def synthetic_lake(data_dir: Path, events: int, days: int) -> None:
    """`events` rows over `days` days, one file per hour, listed in a new data directory's manifest."""
    runtime = LocalRuntime(Settings(data_dir=data_dir))
    manifest = LakeManifest(runtime.db)
    rng = np.random.default_rng(7)
    hours = days * 24
    start_ms = 1_795_824_000_000  # 2026-11-28T00:00Z
    types = pa.array(["page_view", "add_to_cart", "purchase", "signup"])
    browsers = pa.array(["Chrome", "Firefox", "Safari", "Edge", "Mobile Safari"])
    properties = pa.array([f'{{"path":"/p/{i}","title":"Product {i}"}}' for i in range(1000)])
    files = []
    for hour in range(hours):
        n = events // hours + (1 if hour < events % hours else 0)
        occurred = start_ms + hour * HOUR_MS + rng.integers(0, HOUR_MS, n)
        ids = os.urandom(16 * n).hex()
        event_ids = [_uuid_text(ids[i : i + 32]) for i in range(0, 32 * n, 32)]
        users = rng.integers(0, 200_000, n)
        columns = {
            "event_id": pa.array(event_ids),
            "event_type": types.take(pa.array(rng.choice(4, n, p=[0.7, 0.18, 0.07, 0.05]))),
            "schema_version": pa.array(["1-0-0"] * n),
            "occurred_at": pa.array(occurred, type=pa.timestamp("ms", tz="UTC")),
            "received_at": pa.array(occurred + 500, type=pa.timestamp("ms", tz="UTC")),
            "user_id": pa.array([f"u-{u}" for u in users]),
            "session_id": pa.array([f"s-{u}-{hour}" for u in users]),
            "browser": browsers.take(pa.array(rng.integers(0, 5, n))),
            "bot": pa.array(rng.random(n) < 0.02),
            "revenue": pa.array(np.where(rng.random(n) < 0.07, rng.random(n) * 200, np.nan), from_pandas=True),
            "properties": properties.take(pa.array(rng.integers(0, 1000, n))),
            "batch_id": pa.array([f"synthetic-{hour}"] * n),
        }
        table = pa.table([columns.get(f.name, pa.nulls(n, f.type)) for f in LAKE_SCHEMA], schema=LAKE_SCHEMA).sort_by(
            "occurred_at"
        )
        moment = time.gmtime((start_ms + hour * HOUR_MS) / 1000)
        partition = time.strftime("dt=%Y-%m-%d/hour=%H", moment)
        relative = f"{partition}/part-synthetic.parquet"
        files.append(LakeFile(relative, partition, n, write_parquet(data_dir / "lake" / relative, table)))
    manifest.commit_chunk(files, 0, start_ms)
    runtime.close()


def _uuid_text(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def query(work: Path, events: int, repeat: int) -> None:
    data_dir = work / "data-10m"
    started = time.perf_counter()
    synthetic_lake(data_dir, events, days=10)
    built = time.perf_counter() - started
    env = {**os.environ, "EVENTPIPE_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "eventpipe", "query", QUERY, "--json"]
    subprocess.run(command, env=env, capture_output=True, check=True, timeout=300)  # compiles its modules
    times = []
    for _ in range(repeat):
        begun = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, check=True, timeout=300)
        times.append(time.perf_counter() - begun)
    rows = result.stdout.count(b'"events"')
    from eventpipe.lake.query import run_query

    begun = time.perf_counter()
    run_query(data_dir, QUERY)
    in_process = time.perf_counter() - begun
    median = statistics.median(times)
    verdict = "meets" if median < TARGET_QUERY_S else "misses"
    record(
        f"eventpipe query, {events:,} events (s)", median, target=f"< {TARGET_QUERY_S:g} s", met=median < TARGET_QUERY_S
    )
    size_mib = folder_bytes(data_dir / "lake") / 2**20
    print(f"eventpipe query over {events:,} events (a lake generated in {built:.0f} s, {size_mib:,.0f} MiB):")
    print(f"  {QUERY}")
    print(f"  the query alone, in process (no interpreter start, no imports): {in_process:.2f} s")
    print(
        f"  {rows} rows, median {median:.2f} s of {repeat} (each: {', '.join(f'{t:.2f}' for t in times)});"
        f" {verdict} the target {TARGET_QUERY_S} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=150_000, help="events through the chain (default 150,000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--query-events", type=int, default=10_000_000)
    parser.add_argument("--only", choices=["chain", "query"], help="run one part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eventpipe-lake-bench-") as folder:
        work = Path(folder)
        compile_once(work)
        if args.only != "query":
            chain(work, args.events, args.repeat)
        if args.only != "chain":
            query(work, args.query_events, 3)


if __name__ == "__main__":
    main()

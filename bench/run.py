"""`make bench`: the whole chain (parse, validate, enrich, store, aggregate) against a naive baseline.

Each chain runs in its own process on the same generated stream (10% invalid, 5% duplicates);
its CPU time and peak memory come from the kernel (`wait4`). The machine is shared and its speed
drifts within minutes, so the baseline and the main run alternate `--repeat` times and the table
shows each one's median, and the ratio is the median of the ratios of neighbouring pairs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from eventpipe.core.generate import EventGenerator
from eventpipe.core.timeutil import SystemClock

HERE = Path(__file__).parent


@dataclass
class Run:
    name: str
    events: int
    wall_s: float
    cpu_s: float
    peak_mib: float
    output: str

    @property
    def per_core(self) -> float:
        return self.events / self.cpu_s

    @property
    def per_wall(self) -> float:
        return self.events / self.wall_s


def median_run(runs: list[Run]) -> Run:
    """The run with the median CPU rate (an odd count gives a real run, not an average)."""
    return sorted(runs, key=lambda run: run.per_core)[len(runs) // 2]


def generate(path: Path, count: int, seed: int) -> None:
    generator = EventGenerator(seed=seed, now_ms=SystemClock().now_ms())
    with path.open("wb") as out:
        for line in generator.lines(count, invalid_ratio=0.10, duplicate_ratio=0.05):
            out.write(line + b"\n")


def measure(name: str, events: int, command: list[str], env: dict[str, str]) -> Run:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed: {' '.join(command)}")
    return Run(name, events, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output.strip())


def eventpipe_ingest(path: Path, events: int, work: Path, name: str) -> Run:
    env = {**os.environ, "EVENTPIPE_DATA_DIR": str(work / f"data-{name}")}
    run = measure(name, events, [sys.executable, "-m", "eventpipe", "ingest", str(path), "--json"], env)
    summary = orjson.loads(run.output)
    outcomes = summary["curated"] + summary["duplicates"] + sum(summary["rejected"].values())
    if outcomes != events:
        raise SystemExit(f"{name}: {outcomes} outcomes for {events} events: {run.output}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000, help="events for the throughput run")
    parser.add_argument("--baseline-events", type=int, default=3_000, help="the baseline is slow: fewer events")
    parser.add_argument("--memory-events", type=int, default=1_000_000, help="large run for the memory check")
    parser.add_argument("--repeat", type=int, default=3, help="alternating baseline / main runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="eventpipe-bench-") as tmp:
        work = Path(tmp)
        sizes = {"small": 10_000, "main": args.events, "large": args.memory_events, "baseline": args.baseline_events}
        files = {}
        for label, count in sizes.items():
            files[label] = work / f"{label}.ndjson"
            print(f"generating {count:,} events ({label}) ...", file=sys.stderr)
            generate(files[label], count, seed=42)

        baselines, mains = [], []
        for attempt in range(1, args.repeat + 1):
            print(f"run {attempt}/{args.repeat}: the baseline, then eventpipe ingest ...", file=sys.stderr)
            baselines.append(
                measure(
                    "baseline (naive chain)",
                    sizes["baseline"],
                    [sys.executable, str(HERE / "baseline.py"), str(files["baseline"]), str(work / "baseline.db")],
                    dict(os.environ),
                )
            )
            mains.append(eventpipe_ingest(files["main"], sizes["main"], work, f"eventpipe {sizes['main']:,}-{attempt}"))
        baseline, main_run = median_run(baselines), median_run(mains)
        main_ratio = statistics.median(m.per_core / b.per_core for b, m in zip(baselines, mains, strict=True))
        runs = [baseline, main_run]
        for label in ("small", "large"):
            print(f"running eventpipe ingest on {sizes[label]:,} events ...", file=sys.stderr)
            runs.append(eventpipe_ingest(files[label], sizes[label], work, f"eventpipe {sizes[label]:,}"))

    main_run.name = f"eventpipe {sizes['main']:,}"
    print()
    print(f"{'chain':<26}{'events':>11}{'events/s/core':>15}{'events/s wall':>15}{'x baseline':>12}{'peak MiB':>10}")
    for run in runs:
        ratio = main_ratio if run is main_run else run.per_core / baseline.per_core
        print(
            f"{run.name:<26}{run.events:>11,}{run.per_core:>15,.0f}{run.per_wall:>15,.0f}"
            f"{ratio:>12,.1f}{run.peak_mib:>10,.0f}"
        )
    small, large = runs[2], runs[3]
    print()
    print(
        f"memory: {large.events:,} events peak {large.peak_mib:,.0f} MiB vs {small.events:,} events "
        f"{small.peak_mib:,.0f} MiB (x{large.peak_mib / small.peak_mib:.2f})"
    )
    print("events/s/core = events / (user + system CPU seconds of the process); the chain is single-threaded.")
    print(
        f"{args.repeat} alternating runs: baseline {', '.join(f'{r.per_core:,.0f}' for r in baselines)}; "
        f"eventpipe {', '.join(f'{r.per_core:,.0f}' for r in mains)} events/s/core"
    )


if __name__ == "__main__":
    main()

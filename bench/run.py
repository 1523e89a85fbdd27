"""`make bench`: the whole chain (parse, validate, enrich, store, aggregate) against two references.

- the lean chain (`lean.py`): the same work on the same events, written for speed in one file; its
  outcomes must equal eventpipe's (checked), and eventpipe's target is 0.9 of its speed. Both run
  with the same batch size: `eventpipe ingest` cuts a file into batches of its group size
  (EVENTPIPE_GROUP_MAX_EVENTS, 2,000 by default, or as set where this runs), and the lean chain is
  passed that size (`--batch`), so neither shares a batch's fixed costs over more events than the
  other. `--batch-events 500,2000` compares at each size in one sitting;
- the naive chain (`baseline.py`): what a competent user writes first (json, python-jsonschema,
  ua-parser's default cached parser, one INSERT per event, a commit per 500 lines), on fewer events.

Each chain runs in its own process on the same generated stream (10% invalid, 5% duplicates),
with its modules' bytecode compiled once beforehand (a warm-up run), as an installed package has it:
where PYTHONDONTWRITEBYTECODE is set, every run compiled eventpipe's 70 modules again (about 50 ms of
CPU, against a few for the lean chain).
its CPU time and peak memory come from the kernel (`wait4`). The machine is shared and its speed
drifts within minutes, so the chains alternate `--repeat` times; the table shows each one's median
run, and a ratio is the median of the ratios of neighbouring runs.
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

import orjson
from summary import record

from eventpipe.core.timeutil import SystemClock
from eventpipe.generate import EventGenerator
from eventpipe.settings import Settings

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


# `user_id` pseudonymised in every chain, so that all eight enrichers do their work.
PSEUDONYM_KEY = "lean-bench-pseudonym-key-32-bytes"
TARGET_LEAN_RATIO = 0.9
TARGET_PER_CORE = 25_000


def outcomes(run: Run) -> dict[str, int]:
    summary = orjson.loads(run.output.splitlines()[-1])
    return {"curated": summary["curated"], "duplicates": summary["duplicates"], **summary["rejected"]}


def eventpipe_ingest(path: Path, events: int, work: Path, name: str, *, batch: int, lake: bool = False) -> Run:
    env = {
        **os.environ,
        "EVENTPIPE_DATA_DIR": str(work / f"data-{name}"),
        "EVENTPIPE_GROUP_MAX_EVENTS": str(batch),  # a file's batch size, as the lean chain's
        "EVENTPIPE_PSEUDONYMISE_FIELDS": "user_id",
        "EVENTPIPE_PSEUDONYM_KEY": PSEUDONYM_KEY,
        # The lean chain writes no Parquet lake: compared without it, and measured with it once below.
        "EVENTPIPE_LAKE": "on" if lake else "off",
    }
    run = measure(name, events, [sys.executable, "-m", "eventpipe", "ingest", str(path), "--json"], env)
    if sum(outcomes(run).values()) != events:
        raise SystemExit(f"{name}: {sum(outcomes(run).values())} outcomes for {events} events: {run.output}")
    shutil.rmtree(work / f"data-{name}", ignore_errors=True)
    return run


def script(name: str, events: int, path: Path, work: Path, file: str, *options: str) -> Run:
    folder = work / f"work-{name}"
    command = [sys.executable, str(HERE / file), str(path), str(folder), *options]
    run = measure(name, events, command, dict(os.environ))
    shutil.rmtree(folder, ignore_errors=True)
    return run


def ratio(ours: list[Run], theirs: list[Run]) -> float:
    """The median of the ratios of neighbouring runs (the machine's speed drifts between pairs)."""
    return statistics.median(o.per_core / t.per_core for o, t in zip(ours, theirs, strict=True))


def compile_once(work: Path) -> None:
    """Let the chains' processes keep the bytecode they compile, in a folder of this run (not beside
    the sources): pip compiles a package when it installs it, and a run should not pay for it."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "bytecode")


def batch_sizes(text: str | None) -> list[int]:
    """The batch sizes to compare at: those given, else the group size `eventpipe ingest` uses here."""
    if not text:
        return [Settings.from_env(os.environ).group_max_events]
    return [int(size) for size in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events for eventpipe and the lean chain")
    parser.add_argument("--baseline-events", type=int, default=20_000, help="the naive chain is slower: fewer events")
    parser.add_argument("--memory-events", type=int, default=1_000_000, help="large run for the memory check")
    parser.add_argument("--repeat", type=int, default=3, help="alternating naive / lean / eventpipe runs")
    parser.add_argument(
        "--batch-events",
        help="events per batch for both eventpipe and the lean chain, or several (500,2000) compared in turn;"
        " default: eventpipe's group size (EVENTPIPE_GROUP_MAX_EVENTS)",
    )
    parser.add_argument(
        "--lake", action=argparse.BooleanOptionalAction, default=True, help="also a run with the Parquet lake on"
    )
    args = parser.parse_args()
    batches = batch_sizes(args.batch_events)
    default_batch = Settings.from_env(os.environ).group_max_events

    with tempfile.TemporaryDirectory(prefix="eventpipe-bench-") as tmp:
        work = Path(tmp)
        sizes = {"small": 10_000, "main": args.events, "large": args.memory_events, "baseline": args.baseline_events}
        files = {}
        for label, count in sizes.items():
            files[label] = work / f"{label}.ndjson"
            print(f"generating {count:,} events ({label}) ...", file=sys.stderr)
            generate(files[label], count, seed=42)

        compile_once(work)
        warm_up = work / "warm-up.ndjson"
        generate(warm_up, 200, seed=7)
        script("naive chain", 200, warm_up, work, "baseline.py")
        script("lean chain", 200, warm_up, work, "lean.py")
        eventpipe_ingest(warm_up, 200, work, "warm-up", batch=batches[0])
        main_events = sizes["main"]
        naives: list[Run] = []
        leans: dict[int, list[Run]] = {batch: [] for batch in batches}
        mains: dict[int, list[Run]] = {batch: [] for batch in batches}
        for attempt in range(1, args.repeat + 1):
            print(f"run {attempt}/{args.repeat}: naive, then lean and eventpipe at {batches} ...", file=sys.stderr)
            naives.append(script("naive chain", sizes["baseline"], files["baseline"], work, "baseline.py"))
            for batch in batches:
                name = f"{main_events:,}, batch {batch:,}"
                leans[batch].append(
                    script(f"lean {name}", main_events, files["main"], work, "lean.py", "--batch", str(batch))
                )
                mains[batch].append(
                    eventpipe_ingest(files["main"], main_events, work, f"eventpipe {name}", batch=batch)
                )
        for batch in batches:
            lean_counts, main_counts = outcomes(leans[batch][0]), outcomes(mains[batch][0])
            if lean_counts != main_counts:
                raise SystemExit(f"the lean chain's outcomes differ from eventpipe's: {lean_counts} != {main_counts}")
        naive = median_run(naives)
        runs = [naive]
        x_lean: dict[int, float] = {id(naive): ratio(naives, leans[batches[0]])}
        x_naive: dict[int, float] = {id(naive): 1.0}
        compared: dict[int, tuple[Run, Run, float]] = {}  # batch size -> (lean, eventpipe, eventpipe x lean)
        for batch in batches:
            lean, main_run = median_run(leans[batch]), median_run(mains[batch])
            compared[batch] = (lean, main_run, ratio(mains[batch], leans[batch]))
            x_lean |= {id(lean): 1.0, id(main_run): compared[batch][2]}
            x_naive |= {id(lean): ratio(leans[batch], naives), id(main_run): ratio(mains[batch], naives)}
            runs += [lean, main_run]
        reference = default_batch if default_batch in compared else batches[0]
        lean, main_run, x = compared[reference]
        for label in ("small", "large"):
            print(f"running eventpipe ingest on {sizes[label]:,} events ...", file=sys.stderr)
            runs.append(
                eventpipe_ingest(files[label], sizes[label], work, f"eventpipe {sizes[label]:,}", batch=reference)
            )
        small, large = runs[-2], runs[-1]
        if args.lake:  # `make bench` leaves it to bench/lake.py, which measures the lake on and off
            print("running eventpipe ingest with its Parquet lake ...", file=sys.stderr)
            runs.append(
                eventpipe_ingest(
                    files["main"], main_events, work, f"+ lake {main_events:,}", batch=reference, lake=True
                )
            )

    print()
    print(
        f"{'chain':<34}{'events':>11}{'events/s/core':>15}{'events/s wall':>15}"
        f"{'x lean':>8}{'x naive':>9}{'peak MiB':>10}"
    )
    for run in runs:
        lean_x = x_lean.get(id(run), run.per_core / lean.per_core)
        naive_x = x_naive.get(id(run), run.per_core / naive.per_core)
        print(
            f"{run.name:<34}{run.events:>11,}{run.per_core:>15,.0f}{run.per_wall:>15,.0f}"
            f"{lean_x:>8.2f}{naive_x:>9.2f}{run.peak_mib:>10,.0f}"
        )
    print()
    for batch, (lean_b, main_b, x_b) in compared.items():
        print(
            f"batches of {batch:,} events (eventpipe and the lean chain alike): eventpipe / lean chain {x_b:.2f}"
            f" (target >= {TARGET_LEAN_RATIO}); eventpipe {main_b.per_core:,.0f} events/s per core"
            f" (target >= {TARGET_PER_CORE:,}, lean {lean_b.per_core:,.0f}, naive {naive.per_core:,.0f})"
        )
    print(f"outcomes, the same in all: {', '.join(f'{k} {v:,}' for k, v in outcomes(main_run).items())}")
    print(
        f"memory: {large.events:,} events peak {large.peak_mib:,.0f} MiB vs {small.events:,} events "
        f"{small.peak_mib:,.0f} MiB (x{large.peak_mib / small.peak_mib:.2f})"
    )
    print("events/s/core = events / (user + system CPU seconds of the process); each chain is single-threaded.")
    record(
        f"chain, eventpipe (events/s per core; batches of {reference:,})",
        main_run.per_core,
        baseline=lean.per_core,
        ratio=x,
        target=f">= {TARGET_PER_CORE:,}, >= {TARGET_LEAN_RATIO} x lean",
        met=main_run.per_core >= TARGET_PER_CORE and x >= TARGET_LEAN_RATIO,
    )
    for batch, (lean_b, main_b, x_b) in compared.items():
        if batch != reference:
            record(
                f"chain at batches of {batch:,}, eventpipe x lean", main_b.per_core, baseline=lean_b.per_core, ratio=x_b
            )
    record("chain, eventpipe x naive chain", main_run.per_core, baseline=naive.per_core, ratio=x_naive[id(main_run)])
    record(f"chain, peak MiB at {large.events:,} events", large.peak_mib, baseline=small.peak_mib, target="flat")
    print(f"  naive runs: {', '.join(f'{r.per_core:,.0f}' for r in naives)} events/s/core")
    for batch in batches:
        for name, series in (("lean", leans[batch]), ("eventpipe", mains[batch])):
            print(
                f"  {name} runs, batches of {batch:,}: {', '.join(f'{r.per_core:,.0f}' for r in series)} events/s/core"
            )


if __name__ == "__main__":
    main()

"""Where the whole chain's CPU goes, by component: µs per event of `eventpipe ingest`.

    python bench/profile_batches.py [--events 100000] [--rounds 3]

`bench/profile_chain.py` splits the per-event loop; this one splits everything around it. It runs
`eventpipe ingest`'s code in-process on a generated stream (the same as `bench/run.py`, the lake
off, `user_id` pseudonymised) and times each call of the stores and steps a batch goes through: a
timer per call, never per event, so the cost of timing is a few calls per batch. Each component's
time is exclusive (time in the components it calls is theirs), so the rows add up to the total;
`the rest` is what no timer covers (the workflow interpreter, reading the input file, the loop).
Each round ingests into a fresh data directory; the table shows each component's median round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventpipe.core import steps as steps_module
from eventpipe.core.timeutil import SystemClock
from eventpipe.generate import EventGenerator
from eventpipe.localrun.collector import tune_for_batches
from eventpipe.localrun.runtime import LocalRuntime
from eventpipe.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PSEUDONYM_KEY = "lean-bench-pseudonym-key-32-bytes"


class Timers:
    """Exclusive CPU time per component: a call's time less that of the timed calls inside it."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._inner: list[float] = []  # per open call, the time its timed callees took

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        started = time.process_time()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.process_time() - started
            inner = self._inner.pop()
            self.spent[name] = self.spent.get(name, 0.0) + elapsed - inner
            if self._inner:
                self._inner[-1] += elapsed

    def wrap(self, owner: object, method: str, name: str) -> None:
        original: Callable[..., Any] = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.timing(name):
                return original(*args, **kwargs)

        setattr(owner, method, timed)

    def wrap_commit(self, owner: Any, name: str) -> None:
        """Time a transaction's end (its COMMIT) apart from its body."""
        original = owner.atomically

        @contextmanager
        def atomically() -> Iterator[object]:
            with self.timing(name), original() as value, self._paused():
                yield value

        owner.atomically = atomically

    @contextmanager
    def _paused(self) -> Iterator[None]:
        """The body of a timed block whose own time is counted elsewhere: count it as inner time."""
        started = time.process_time()
        self._inner.append(0.0)
        try:
            yield
        finally:
            self._inner.pop()
            self._inner[-1] += time.process_time() - started


def one_round(path: Path, work: Path) -> tuple[dict[str, float], float, int]:
    env = {
        **os.environ,
        "EVENTPIPE_DATA_DIR": str(work),
        "EVENTPIPE_LAKE": "off",
        "EVENTPIPE_PSEUDONYMISE_FIELDS": "user_id",
        "EVENTPIPE_PSEUDONYM_KEY": PSEUDONYM_KEY,
    }
    runtime = LocalRuntime(Settings.from_env(env))
    tune_for_batches()  # as `eventpipe ingest` does
    timers = Timers()
    steps = runtime.steps
    for owner, method, name in (
        (runtime.bucket, "put", "raw object written (fsync)"),
        (runtime.bucket, "get", "raw object read"),
        (runtime.batches, "create", "batch recorded"),
        (runtime.batches, "get", "batch read"),
        (runtime.batches, "mark_done", "batch marked done (commit)"),
        (steps, "_curate_batch", "parse, validate, enrich, serialise"),
        (runtime.quarantine, "for_batch", "quarantine"),
        (runtime.quarantine, "add", "quarantine"),
        (runtime.quarantine, "remove", "quarantine"),
        (runtime.segments, "put", "segment file written (fsync)"),
        (runtime.curated, "put_new", "dedup index (SQLite)"),
        (runtime.insights, "apply", "insights and sketches (SQLite)"),
    ):
        timers.wrap(owner, method, name)
    timers.wrap_commit(steps, "ProcessBatch commit")
    timers.wrap(steps_module, "aggregate_batch", "aggregate (Python)")
    received = 0
    started = time.process_time()
    with path.open("rb") as stream:
        for record in runtime.ingestor.ingest_file(stream, source="file:bench", version=str(path)):
            received += record.received
    total = time.process_time() - started
    runtime.close()
    return timers.spent, total, received


def generate(path: Path, count: int) -> None:
    generator = EventGenerator(seed=42, now_ms=SystemClock().now_ms())
    with path.open("wb") as out:
        for line in generator.lines(count, invalid_ratio=0.10, duplicate_ratio=0.05):
            out.write(line + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds: list[tuple[dict[str, float], float, int]] = []
    with tempfile.TemporaryDirectory(prefix="eventpipe-profile-") as tmp:
        path = Path(tmp) / "events.ndjson"
        generate(path, args.events)
        for number in range(args.rounds):
            print(f"round {number + 1}/{args.rounds} ...", file=sys.stderr)
            rounds.append(one_round(path, Path(tmp) / f"data-{number}"))
    names = list(dict.fromkeys(name for spent, _, _ in rounds for name in spent))
    events = rounds[0][2]
    print(f"\nwhole chain, µs of CPU per input event (median of {args.rounds} rounds of {events:,} events)")
    print(f"{'component':<36}{'µs/event':>10}")
    covered = 0.0
    for name in names:
        micros = statistics.median(spent.get(name, 0.0) for spent, _, _ in rounds) / events * 1e6
        covered += micros
        print(f"{name:<36}{micros:>10.2f}")
    total = statistics.median(total for _, total, _ in rounds) / events * 1e6
    print(f"{'the rest':<36}{total - covered:>10.2f}")
    print(f"{'total':<36}{total:>10.2f}   ({1e6 / total:,.0f} events/s per core)")


if __name__ == "__main__":
    main()

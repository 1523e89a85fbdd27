"""Where a curated event's CPU goes in the per-event loop: µs per event by component.

    python bench/profile_chain.py [--events 20000] [--rounds 5]

The loop of ProcessBatch (parse, validate, each enricher in its order, serialise, facts) is run
one component at a time over each batch of 500 lines, so no timer sits inside the loop: a
component's time is the CPU time of its pass over all events, divided by the events it saw. Each
round parses the same lines afresh (the enrichers change the events); the first round warms the
caches (user agents, URL hosts), as a long-running process has them, and the table shows each
component's best round. The stores are not in it: `bench/run.py` measures the whole chain.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.enrich import EnrichmentConfig, build_enrichers
from eventpipe.core.errors import EnrichmentError
from eventpipe.core.facts import fact_of
from eventpipe.core.registry import SchemaRegistry
from eventpipe.core.timeutil import SystemClock, to_iso
from eventpipe.core.validation import parse_event, validate_event
from eventpipe.generate import EventGenerator

if TYPE_CHECKING:
    from collections.abc import Callable

Event = dict[str, Any]


def timed(events: list[Any], work: Callable[[Any], Any]) -> tuple[list[Any], float]:
    """Apply `work` to each event; the results that are not None, and the seconds it took."""
    started = time.process_time()  # CPU time: on a shared machine, wall time would count the neighbours
    results = [work(event) for event in events]
    return [r for r in results if r is not None], time.process_time() - started


def one_round(lines: list[bytes], received_at: str) -> dict[str, tuple[float, int]]:
    """Seconds and events seen per component, for one pass of the loop over `lines`, batch by batch."""
    spent: dict[str, tuple[float, int]] = {}
    for start in range(0, len(lines), BATCH):
        for name, (seconds, count) in one_batch(lines[start : start + BATCH], received_at).items():
            total, seen = spent.get(name, (0.0, 0))
            spent[name] = (total + seconds, seen + count)
    return spent


def one_batch(lines: list[bytes], received_at: str) -> dict[str, tuple[float, int]]:
    registry = REGISTRY
    spent: dict[str, tuple[float, int]] = {}

    def parse(line: bytes) -> Any:
        event, malformed = parse_event(line)
        return None if malformed is not None else event

    def validate(event: Any) -> Event | None:
        if validate_event(event, registry):
            return None
        event["received_at"] = received_at
        event["enrichment"] = {}
        return event  # type: ignore[no-any-return]

    events, seconds = timed(lines, parse)
    spent["parse (orjson)"] = (seconds, len(lines))
    count = len(events)
    events, seconds = timed(events, validate)
    spent["validate (jsonschema-rs)"] = (seconds, count)
    for enricher in ENRICHERS:

        def enrich(event: Event, enricher: Any = enricher) -> Event | None:
            try:
                enricher.enrich(event, event["enrichment"])
            except EnrichmentError:
                return None
            return event

        count = len(events)
        events, seconds = timed(events, enrich)
        spent[f"enrich: {enricher.name}"] = (seconds, count)
    count = len(events)
    _, seconds = timed(events, orjson.dumps)
    spent["serialise (orjson)"] = (seconds, count)
    _, seconds = timed(events, fact_of)
    spent["facts"] = (seconds, count)
    return spent


BATCH = 500  # as ingest cuts them: a batch's events are alive together, as in ValidateEnrich
REGISTRY = SchemaRegistry.load()
ENRICHERS = build_enrichers(EnrichmentConfig(pseudonymise_fields=("user_id",), pseudonym_key=b"k" * 32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    now_ms = SystemClock().now_ms()
    generator = EventGenerator(seed=42, now_ms=now_ms)
    lines = list(generator.lines(args.events, invalid_ratio=0.10, duplicate_ratio=0.05))
    received_at = to_iso(now_ms)
    best: dict[str, float] = {}
    seen: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, (seconds, count) in one_round(lines, received_at).items():
            per_event = seconds / max(count, 1) * 1e6
            best[name] = min(best.get(name, per_event), per_event)
            seen[name] = count
    print(f"\nper-event loop, µs per event it saw (best of {args.rounds} rounds of {args.events:,} lines)")
    print(f"{'component':<28}{'events':>9}{'µs/event':>10}")
    for name, micros in best.items():
        print(f"{name:<28}{seen[name]:>9,}{micros:>10.2f}")
    # Weighted by the events each component saw, per line of input: what the loop costs a line.
    total = sum(best[name] * seen[name] for name in best) / args.events
    print(f"{'total per input line':<28}{args.events:>9,}{total:>10.2f}")
    print("pseudonymise: user_id with a test key (off by default; on here so its cost shows)")


if __name__ == "__main__":
    main()

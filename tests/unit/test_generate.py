"""EventGenerator: a deterministic clickstream with a chosen share of invalid lines and exact duplicates."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from eventpipe.core.enrich import EnrichmentConfig, build_enrichers
from eventpipe.core.errors import EnrichmentError
from eventpipe.core.registry import SchemaRegistry
from eventpipe.core.timeutil import parse_iso_ms, to_iso
from eventpipe.core.validation import parse_event, validate_event
from eventpipe.generate import EventGenerator

NOW_MS = 1_795_845_600_000  # 2026-11-28T06:00:00Z


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.load()


def generate(count: int, *, seed: int = 1, **ratios: float) -> list[bytes]:
    return list(EventGenerator(seed=seed, now_ms=NOW_MS).lines(count, **ratios))


def first_failure(line: bytes, registry: SchemaRegistry, enrichers: list[Any] | None = None) -> str | None:
    """The reason code the pipeline would give `line`, or None when it would be curated."""
    event, malformed = parse_event(line)
    if malformed is not None:
        return str(malformed.code)
    reasons = validate_event(event, registry)
    if reasons:
        return str(reasons[0].code)
    if enrichers is not None:
        event["received_at"] = to_iso(NOW_MS)
        enrichment: dict[str, Any] = {}
        try:
            for enricher in enrichers:
                enricher.enrich(event, enrichment)
        except EnrichmentError:
            return "enrichment_failed"
    return None


def test_the_same_seed_gives_the_same_lines() -> None:
    ratios = {"invalid_ratio": 0.1, "duplicate_ratio": 0.05}
    assert generate(500, seed=7, **ratios) == generate(500, seed=7, **ratios)
    assert generate(500, seed=7, **ratios) != generate(500, seed=8, **ratios)


def test_another_clock_moves_the_event_times() -> None:
    a = list(EventGenerator(seed=3, now_ms=NOW_MS).lines(20))
    b = list(EventGenerator(seed=3, now_ms=NOW_MS + 3_600_000).lines(20))
    times_a = [parse_iso_ms(orjson.loads(line)["occurred_at"]) for line in a]
    times_b = [parse_iso_ms(orjson.loads(line)["occurred_at"]) for line in b]
    assert [t + 3_600_000 for t in times_a] == times_b


@pytest.mark.parametrize("count", [0, 1, 2, 999, 2500])
def test_exactly_count_lines_without_newlines(count: int) -> None:
    lines = generate(count, invalid_ratio=0.2, duplicate_ratio=0.1)
    assert len(lines) == count
    assert all(line and b"\n" not in line for line in lines)


def test_without_ratios_every_line_is_a_valid_event(registry: SchemaRegistry) -> None:
    # GIVEN 2,000 lines with no invalid and no duplicate share
    lines = generate(2000)
    # THEN each passes validation with the bundled registry, and ids are unique
    assert [first_failure(line, registry) for line in lines] == [None] * 2000
    events = [orjson.loads(line) for line in lines]
    assert len({e["event_id"] for e in events}) == 2000
    assert {e["event_type"] for e in events} == {"page_view", "add_to_cart", "purchase", "signup"}
    # AND event times lie in the 30 minutes up to now
    times = [parse_iso_ms(e["occurred_at"]) for e in events]
    assert NOW_MS - 30 * 60_000 <= min(times) <= max(times) <= NOW_MS


def test_valid_lines_also_pass_enrichment(registry: SchemaRegistry) -> None:
    enrichers = build_enrichers(EnrichmentConfig())
    assert [first_failure(line, registry, enrichers) for line in generate(500, seed=5)] == [None] * 500


def test_the_invalid_ratio_is_roughly_respected(registry: SchemaRegistry) -> None:
    # GIVEN 5,000 lines with 10% invalid
    lines = generate(5000, seed=11, invalid_ratio=0.1)
    # WHEN each is checked as the pipeline would (parse, validate, enrich)
    enrichers = build_enrichers(EnrichmentConfig())
    codes = Counter(first_failure(line, registry, enrichers) for line in lines)
    rejected = sum(n for code, n in codes.items() if code is not None)
    # THEN 10% +- 3% are turned away, with every kind of fault represented
    assert 0.07 <= rejected / 5000 <= 0.13
    assert set(codes) == {
        None,
        "malformed_json",
        "envelope_invalid",
        "unknown_event_type",
        "schema_violation",
        "enrichment_failed",
    }
    # AND the faults caught by parse and validate alone (all but the unknown currency) are 5/6 of them
    by_validation = rejected - codes["enrichment_failed"]
    assert 0.05 <= by_validation / 5000 <= 0.115


def test_duplicates_are_exact_copies_of_earlier_lines(registry: SchemaRegistry) -> None:
    # GIVEN 5,000 lines with 10% duplicates
    lines = generate(5000, seed=2, duplicate_ratio=0.1)
    # WHEN lines are grouped by event id
    first_seen: dict[str, bytes] = {}
    repeats = 0
    for line in lines:
        event_id = orjson.loads(line)["event_id"]
        if event_id in first_seen:
            # THEN a repeat is byte for byte the line it repeats
            assert line == first_seen[event_id]
            repeats += 1
        else:
            first_seen[event_id] = line
    # AND about 10% are repeats, each of a valid line
    assert 0.07 <= repeats / 5000 <= 0.13
    assert all(first_failure(line, registry) is None for line in first_seen.values())


def test_with_both_ratios_duplicates_repeat_only_valid_lines(registry: SchemaRegistry) -> None:
    lines = generate(3000, seed=4, invalid_ratio=0.2, duplicate_ratio=0.2)
    counts = Counter(lines)
    repeated = [line for line, n in counts.items() if n > 1]
    assert repeated
    assert all(first_failure(line, registry) is None for line in repeated)

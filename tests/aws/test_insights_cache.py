"""The sketch cache of GET /insights on AWS: the same answers as a read without it, and repeated polls read
only the small counter items and the minute items of the minutes that changed.

Items and bytes are counted on botocore's parsed Query answers from moto (bench/insights_read.py --polls).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore
from eventpipe.adapters.aws.retry import NO_WAIT
from eventpipe.adapters.aws.sketch_cache import SketchCache
from eventpipe.core.aggregate import aggregate_batch
from eventpipe.core.facts import Fact
from eventpipe.core.insights import build_insights
from eventpipe.core.segments import InsightsView
from tests.aws.conftest import INSIGHTS_TABLE
from tests.aws.insights_stream import StreamedStore

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # the bench's filler and counter

from insights_read import START, apply_and_fold, fill, one_more_batch, read

D = 1_795_824_000  # 2026-11-28T00:00:00Z
VIEWS = [InsightsView(), InsightsView(app_id="shop"), InsightsView(include_bots=True)]


def random_batch(rng: random.Random, number: int, around: int) -> Any:
    """Events of a few apps, bots and people, sessions and users, within 3 hours before `around` (late ones too)."""
    facts = [
        Fact(
            f"e-{number}-{n}",
            rng.choice(["page_view", "page_view", "add_to_cart", "purchase"]),
            (around - rng.randrange(0, 3 * 3600)) * 1000,
            rng.choice([None, *(f"u{k}" for k in range(40))]),
            rng.choice([None, *(f"s{k}" for k in range(15))]),
            round(rng.uniform(1, 50), 2),
            app_id=rng.choice([None, "shop", "blog"]),
            bot=rng.random() < 0.2,
        )
        for n in range(rng.randint(0, 30))
    ]
    received_ms = around * 1000
    return aggregate_batch(
        facts, received_at_ms=received_ms, now_ms=received_ms + 60_000, rejected={}, duplicates=rng.choice([0, 1])
    )


def document(store: Any, since: int, until: int, view: InsightsView) -> dict[str, Any]:
    rows = store.read(since, until, view=view)
    return build_insights(rows, since_ms=since * 1000, until_ms=until * 1000, currency="EUR", view=view)


@pytest.mark.parametrize("seed", range(2))
def test_interleaved_writes_and_polls_answer_as_a_read_without_the_cache(dynamodb: Any, seed: int) -> None:
    # GIVEN a store read through a small sketch cache (evictions happen) and one read without a cache
    rng = random.Random(seed)
    cached = StreamedStore(
        DynamoInsightsStore(INSIGHTS_TABLE, dynamodb, backoff=NO_WAIT, sketch_cache=SketchCache(60_000)), dynamodb
    )
    plain = DynamoInsightsStore(INSIGHTS_TABLE, dynamodb, backoff=NO_WAIT)
    now = D + 3 * 3600
    for number in range(20):
        # WHEN batches (some late, several apps, bots) land between polls of moving windows and views
        now += rng.choice([0, 3, 3, 60])
        cached.apply(f"b{number}", random_batch(rng, number, now))
        if number % 4 == 3:
            cached.apply(f"b{number}", random_batch(rng, number, now))  # a redelivery: counts nothing
        since = now - now % 60 - rng.choice([3600, 1800, 600])
        for view in VIEWS:
            # THEN every poll answers what a read without the cache answers
            assert document(cached, since, now + 60, view) == document(plain, since, now + 60, view)


def test_polls_read_the_small_counter_items_and_only_the_minute_items_of_changed_minutes(dynamodb: Any) -> None:
    # GIVEN an hour and its lookback at 1,000 events/s, 100,000 sessions: sketch items of several KB
    fill(dynamodb, hours=1, sessions=100_000)
    store = DynamoInsightsStore("insights-bench", dynamodb, backoff=NO_WAIT, sketch_cache=SketchCache())
    # WHEN the dashboard polls twice with nothing written in between
    first, _cpu, first_document = read(dynamodb, store, hours=1)
    second, _cpu, second_document = read(dynamodb, store, hours=1)
    # THEN the first poll (a cold cache) read the 180 minute items of the window and lookback, as a read without it
    assert (first["items"], first["small items"]) == (180, 0)
    # AND the second only the 180 counter items (under 1 KB each), with the same answer
    assert (second["items"], second["small items"]) == (180, 180)
    assert second["bytes"] < first["bytes"] / 10
    assert second_document == first_document
    # WHEN a batch of 10 new sessions lands in the window's last minute, and the dashboard polls again
    apply_and_fold(store, "one-more", one_more_batch(START + 3600 - 60, 1))
    after, _cpu, document = read(dynamodb, store, hours=1)
    # THEN it read the counter items and that minute's item only, and counts the new sessions
    assert (after["items"], after["small items"]) == (181, 180)
    assert document["funnel"]["page_view"] == first_document["funnel"]["page_view"] + 10
    fresh = DynamoInsightsStore("insights-bench", dynamodb, backoff=NO_WAIT)
    assert document == read(dynamodb, fresh, hours=1)[2]

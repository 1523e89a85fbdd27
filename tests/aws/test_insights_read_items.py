"""A `GET /insights` read from DynamoDB returns a number of items bounded by minutes, never by sessions.

The items are counted on botocore's parsed Query answers from moto (bench/insights_read.py prints the
same figures with the CPU time).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventpipe.adapters.aws.dynamodb_calls import batch_put
from eventpipe.adapters.aws.dynamodb_insights import DynamoInsightsStore
from eventpipe.adapters.aws.retry import NO_WAIT
from eventpipe.adapters.aws.sketch_cache import SketchCache
from eventpipe.core.funnel import SESSION_LOOKBACK_S

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # the bench's filler and counter

from insights_read import START, TABLE, fill, read


def day(minute: int) -> str:
    return datetime.fromtimestamp(minute, UTC).strftime("%Y-%m-%d")


@pytest.mark.parametrize("sessions", [1_000, 100_000])
def test_a_one_hour_read_returns_at_most_300_items_whatever_the_sessions(dynamodb: Any, sessions: int) -> None:
    # GIVEN an hour and its two-hour lookback at 1,000 events/s, with 1,000 or 100,000 distinct sessions
    store = fill(dynamodb, hours=1, sessions=sessions)
    # WHEN GET /insights reads the hour
    counted, _cpu, document = read(dynamodb, store, hours=1)
    items = counted["items"]
    # THEN DynamoDB returned the 60 minute items of the window and the 120 of the lookback
    assert items == 180
    assert items <= 300
    # AND so does the first poll of a new container (its sketch cache cold), with the same answer
    cached = DynamoInsightsStore(TABLE, dynamodb, backoff=NO_WAIT, sketch_cache=SketchCache())
    first_poll, _cpu, cached_document = read(dynamodb, cached, hours=1)
    assert (first_poll["items"], cached_document) == (180, document)
    # AND the funnel is exact while no minute holds more than 1,024 sessions of a step: a third of the
    # sessions fall in the window, each viewing, 2 in 5 adding to the cart, 1 in 5 buying
    viewed = document["funnel"]["page_view"]
    assert viewed == sum(1 for n in range(sessions) if n % 180 >= 120)
    assert document["funnel"]["add_to_cart"] == sum(1 for n in range(sessions) if n % 180 >= 120 and n % 5 < 2)
    assert document["totals"]["events"] == 60 * 60_000


def test_a_24_hour_read_returns_at_most_5000_items(dynamodb: Any) -> None:
    # GIVEN the first hour applied for real, and its items copied to every minute of the day and its lookback
    # (applying 26 hours under moto takes minutes; the read is what is measured here)
    store = fill(dynamodb, hours=1, sessions=1_000)
    items = dynamodb.scan(TableName=TABLE)["Items"]
    template = {kind: next(i for i in items if i["pk"]["S"].startswith(kind)) for kind in ("minute#", "sketch#")}
    # (every copy of the minute item has the same version as its counter copy: a cached poll trusts them)
    first = START - SESSION_LOOKBACK_S
    copies = [
        {**item, "pk": {"S": item["pk"]["S"].split("#")[0] + "#" + day(minute)}, "sk": {"S": f"{minute:012d}"}}
        for minute in range(first, START + 24 * 3600, 60)
        for item in template.values()
    ]
    batch_put(dynamodb, TABLE, copies, NO_WAIT)
    # WHEN GET /insights reads the 24 hours
    counted, _cpu, document = read(dynamodb, store, hours=24)
    items_read = counted["items"]
    # THEN DynamoDB returned the 1,440 minute items of the day and the 120 of the lookback
    assert items_read == 1_560
    assert items_read <= 5_000
    assert len(document["minutes"]) == 1_440
    # AND the first poll of a new container reads as many; a later poll the 1,560 small counter items only
    cached = DynamoInsightsStore(TABLE, dynamodb, backoff=NO_WAIT, sketch_cache=SketchCache())
    first_poll, _cpu, _document = read(dynamodb, cached, hours=24)
    next_poll, _cpu, _document = read(dynamodb, cached, hours=24)
    assert (first_poll["items"], next_poll["items"], next_poll["small items"]) == (1_560, 1_560, 1_560)

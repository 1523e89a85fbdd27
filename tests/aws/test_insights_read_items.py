"""A `GET /insights` read from DynamoDB returns a number of items bounded by minutes, never by sessions.

The items are counted on botocore's parsed Query answers from moto (bench/insights_read.py prints the
same figures with the CPU time).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # the bench's filler and counter

from insights_read import fill, read  # noqa: E402  (bench/insights_read.py)


@pytest.mark.parametrize("sessions", [1_000, 100_000])
def test_a_one_hour_read_returns_at_most_300_items_whatever_the_sessions(dynamodb: Any, sessions: int) -> None:
    # GIVEN an hour and its two-hour lookback at 1,000 events/s, with 1,000 or 100,000 distinct sessions
    store = fill(dynamodb, hours=1, sessions=sessions)
    # WHEN GET /insights reads the hour
    items, _queries, _cpu, document = read(dynamodb, store, hours=1)
    # THEN DynamoDB returned 60 counter items, 60 sketch items and 120 lookback sketch items
    assert items == 240
    assert items <= 300
    # AND the funnel is exact while no minute holds more than 1,024 sessions of a step: a third of the
    # sessions fall in the window, each viewing, 2 in 5 adding to the cart, 1 in 5 buying
    viewed = document["funnel"]["page_view"]
    assert viewed == sum(1 for n in range(sessions) if n % 180 >= 120)
    assert document["funnel"]["add_to_cart"] == sum(1 for n in range(sessions) if n % 180 >= 120 and n % 5 < 2)
    assert document["totals"]["events"] == 60 * 60_000


def test_a_24_hour_read_returns_at_most_5000_items(dynamodb: Any) -> None:
    store = fill(dynamodb, hours=24, sessions=1_000)
    items, _queries, _cpu, document = read(dynamodb, store, hours=24)
    # 1,440 counter items, 1,440 sketch items, 120 lookback sketch items
    assert items == 3_000
    assert len(document["minutes"]) == 1_440

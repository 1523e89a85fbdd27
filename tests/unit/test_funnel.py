"""funnel_counts: the funnel of a window from per-minute Theta sketches of sessions.

The sketches are exact while a minute holds at most 1,024 sessions of a step: there, the counts
must equal those of a plain set computation (the per-session rows eventpipe kept before). Beyond,
they are estimates within the documented error (docs/insights.md).
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import TYPE_CHECKING

import pytest

from eventpipe.adapters.local import Database, SqliteInsightsStore
from eventpipe.core.aggregate import BatchAggregate, MinuteAggregate
from eventpipe.core.funnel import (
    FUNNEL_STEPS,
    SESSION_LOOKBACK_S,
    STEP_LG_K,
    StepSketch,
    funnel_counts,
    new_step_sketch,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

M = 1_795_845_600  # 2026-11-28T06:00:00Z in epoch seconds: a minute start
PAGE_VIEW, ADD_TO_CART, PURCHASE = range(3)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteInsightsStore]:
    db = Database(tmp_path / "eventpipe.sqlite")
    yield SqliteInsightsStore(db)
    db.close()


def sketches(rows: Iterable[tuple[int, str, int]]) -> list[StepSketch]:
    """`(minute, session, step)` rows as the stores keep them: one sketch per minute and step."""
    by_key: dict[tuple[int, int], list[str]] = defaultdict(list)
    for minute, session, step in rows:
        by_key[(minute, step)].append(session)
    result = []
    for (minute, step), sessions in sorted(by_key.items()):
        sketch = new_step_sketch()
        for session in sessions:
            sketch.update(session)
        result.append(StepSketch(minute, "", step, bytes(sketch.compact().serialize())))
    return result


def exact_counts(rows: Iterable[tuple[int, str, int]], *, since_minute: int, until_minute: int) -> list[int]:
    """The documented rule with plain sets: the oracle the sketches are held to."""
    lookback = since_minute - SESSION_LOOKBACK_S
    reached: dict[str, set[int]] = defaultdict(set)
    in_window: dict[str, set[int]] = defaultdict(set)
    for minute, session, step in rows:
        if lookback <= minute < until_minute and 0 <= step < len(FUNNEL_STEPS):
            reached[session].add(step)
            if minute >= since_minute:
                in_window[session].add(step)
    counts = [0] * len(FUNNEL_STEPS)
    for session, steps in in_window.items():
        for step in steps:
            counts[step] += all(before in reached[session] for before in range(step))
    return counts


def counts(rows: list[tuple[int, str, int]], since: int = M, until: int = M + 60) -> list[int]:
    return funnel_counts(sketches(rows), since_minute=since, until_minute=until)


def test_a_step_counts_only_when_every_earlier_step_was_reached() -> None:
    # GIVEN s1 that goes all the way, s2 that skips the page view, s3 that only views, s4 that skips the cart
    rows = [
        (M, "s1", PAGE_VIEW),
        (M, "s1", ADD_TO_CART),
        (M, "s1", PURCHASE),
        (M, "s2", ADD_TO_CART),
        (M, "s2", PURCHASE),
        (M, "s3", PAGE_VIEW),
        (M, "s4", PAGE_VIEW),
        (M, "s4", PURCHASE),
    ]
    # THEN page_view: s1, s3, s4; add_to_cart and purchase: s1 only
    assert counts(rows) == [3, 1, 1]
    assert len(FUNNEL_STEPS) == 3


def test_earlier_steps_count_from_the_lookback_and_later_steps_only_in_the_window() -> None:
    # GIVEN page views exactly at the lookback bound and just before it, and carts in the window
    rows = [
        (M - SESSION_LOOKBACK_S, "at-bound", PAGE_VIEW),
        (M - SESSION_LOOKBACK_S - 60, "too-early", PAGE_VIEW),
        (M, "at-bound", ADD_TO_CART),
        (M, "too-early", ADD_TO_CART),
    ]
    # THEN only the session whose view lies within the lookback counts at the cart, and no view is in the window
    assert SESSION_LOOKBACK_S == 7200
    assert counts(rows) == [0, 1, 0]


def test_the_window_is_since_inclusive_until_exclusive() -> None:
    # GIVEN one view in each of three minutes, and a cart after the window whose view is inside
    rows = [(M - 60, "a", PAGE_VIEW), (M, "b", PAGE_VIEW), (M + 60, "c", PAGE_VIEW), (M + 60, "b", ADD_TO_CART)]
    # THEN [M, M+60) holds b's view only; the cart outside the window does not count
    assert counts(rows) == [1, 0, 0]
    assert counts(rows, M, M + 120) == [2, 1, 0]


def test_steps_count_whatever_their_order_in_time() -> None:
    # GIVEN a session that added to the cart a minute before its page view, both in the window
    rows = [(M, "s", ADD_TO_CART), (M + 60, "s", PAGE_VIEW)]
    # THEN both steps count, as in the SQL query: the funnel is about reaching steps, not their order
    assert counts(rows, M, M + 120) == [1, 1, 0]


def test_unknown_steps_and_an_empty_window_count_nothing() -> None:
    assert counts([(M, "s", 7), (M, "s", -1)]) == [0, 0, 0]
    assert counts([(M, "s", PAGE_VIEW)], M, M) == [0, 0, 0]
    assert counts([]) == [0, 0, 0]


def random_rows(rng: random.Random) -> list[tuple[int, str, int]]:
    """Steps of a few sessions spread over six hours, dense enough for sessions to reach later steps."""
    sessions = [f"s{n}" for n in range(rng.randint(1, 25))]
    minutes = [M - 4 * 3600 + 60 * n for n in range(rng.randint(1, 6 * 60))]
    return [(rng.choice(minutes), rng.choice(sessions), rng.randrange(3)) for _ in range(rng.randint(0, 200))]


def batch(rows: Iterable[tuple[int, str, int]]) -> BatchAggregate:
    result = BatchAggregate(batch_minute=M)
    for minute, session, step in rows:
        bucket = result.minutes.setdefault(minute, MinuteAggregate())
        bucket.sessions.setdefault(step, new_step_sketch()).update(session)
    return result


@pytest.mark.parametrize("seed", range(12))
def test_below_a_minutes_capacity_the_counts_are_exact(sqlite_store: SqliteInsightsStore, seed: int) -> None:
    # GIVEN random step rows, applied to the SQLite store in a few batches (their sketches merged)
    rng = random.Random(seed)
    rows = random_rows(rng)
    for number in range(3):
        sqlite_store.apply(f"b{number}", batch(rows[number::3]))
    # WHEN random windows (some not on minute bounds, some empty) are counted
    for _ in range(20):
        since = M - 5 * 3600 + rng.randrange(0, 7 * 3600, rng.choice([60, 1, 7]))
        until = since + rng.randrange(0, 4 * 3600, 60) + rng.choice([0, 0, 30])
        # THEN the sketches, directly or through the store, give the exact answer of the rule
        expected = exact_counts(rows, since_minute=since, until_minute=until)
        assert funnel_counts(sketches(rows), since_minute=since, until_minute=until) == expected, (since, until)
        assert sqlite_store.read(since, until).funnel == expected, (since, until)


def test_beyond_a_minutes_capacity_the_counts_are_estimates_within_the_documented_error() -> None:
    # GIVEN half an hour of 3,000 sessions a minute (three times a minute sketch's 1,024), each viewing in
    # its minute, 40% of them adding to the cart and half of those buying, after half an hour alike
    rng = random.Random(7)
    rows: list[tuple[int, str, int]] = []
    for minute in range(M - 1800, M + 1800, 60):
        for n in range(3_000):
            session = f"{minute}-{n}"
            rows.append((minute, session, PAGE_VIEW))
            if rng.random() < 0.4:
                rows.append((minute, session, ADD_TO_CART))
                if rng.random() < 0.5:
                    rows.append((minute, session, PURCHASE))
    assert STEP_LG_K == 10
    exact = exact_counts(rows, since_minute=M, until_minute=M + 1800)
    estimate = funnel_counts(sketches(rows), since_minute=M, until_minute=M + 1800)
    # THEN each step is within 3 relative standard errors of 1 / sqrt(count * theta), theta = 1,024 / 3,000
    for step, (truth, guess) in enumerate(zip(exact, estimate, strict=True)):
        error = 1 / (truth * 1_024 / 3_000) ** 0.5
        assert abs(guess - truth) <= 3 * error * truth, (FUNNEL_STEPS[step], truth, guess)
    assert exact[0] == 90_000

from __future__ import annotations

import random
from collections import Counter

import pytest

from eventpipe.core.histogram import _FIRSTS, bucket_of, bucket_of_ms, bucket_value, quantile


def test_every_value_lies_in_its_bucket_and_the_bucket_value_is_within_2_2_percent() -> None:
    for value in [1, 1.5, 2, 3, 10, 99.9, 1000, 65_432, 86_400_000]:
        assert bucket_value(bucket_of(value)) == pytest.approx(value, rel=0.022)
    assert bucket_of(0) == bucket_of(0.99) == 0
    assert bucket_value(0) == 0.0


def test_quantiles_match_the_exact_ones_within_the_bucket_width() -> None:
    # GIVEN 10,000 latencies spread over four orders of magnitude
    rnd = random.Random(7)
    values = sorted(rnd.lognormvariate(6, 1.5) for _ in range(10_000))
    counts = Counter(bucket_of(v) for v in values)
    # THEN p50 and p95 agree with the nearest-rank quantiles of the raw values
    assert quantile(counts, 0.5) == pytest.approx(values[4999], rel=0.025)
    assert quantile(counts, 0.95) == pytest.approx(values[9499], rel=0.025)


def test_merging_is_adding_counts_and_is_deterministic() -> None:
    first = Counter(bucket_of(v) for v in range(0, 500))
    second = Counter(bucket_of(v) for v in range(500, 1000))
    merged = first + second
    assert quantile(merged, 0.5) == quantile(second + first, 0.5)
    assert quantile(merged, 0.5) == pytest.approx(499, rel=0.025)


def test_an_empty_histogram_has_no_quantile() -> None:
    assert quantile({}, 0.5) is None


def test_the_table_lookup_for_whole_milliseconds_gives_the_bucket_bucket_of_gives() -> None:
    # GIVEN every age up to a minute, each bucket's edges and ages far past the table (years, centuries)
    edges = [first + step for first in _FIRSTS for step in (-1, 0, 1)]
    ages = [*range(-3, 60_000), *edges, 2**40 - 1, 2**40, 2**45 + 17]
    # THEN the lookup agrees with the logarithm everywhere, a negative age in bucket 0
    assert [bucket_of_ms(age) for age in ages] == [bucket_of(max(0, age)) for age in ages]

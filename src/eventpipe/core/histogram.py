"""Latency histograms with logarithmic buckets: deterministic, and merged by adding counts.

A bucket is 4.4% wide (16 per doubling), so a quantile read from it is within about 2.2% of the
true value. Unlike a randomized sketch, the same counts always give the same quantiles, and a
store can merge them with plain additions (SQLite upserts, DynamoDB ADD).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

_PER_DOUBLING = 16
_LOG_GROWTH = math.log(2) / _PER_DOUBLING


def bucket_of(value: float) -> int:
    """Bucket 0 holds [0, 1); bucket b >= 1 holds [g**(b-1), g**b) with g = 2**(1/16)."""
    if value < 1:
        return 0
    return 1 + int(math.log(value) / _LOG_GROWTH)


def bucket_value(bucket: int) -> float:
    """The geometric middle of a bucket: the value a quantile that falls in it reports."""
    if bucket == 0:
        return 0.0
    return math.exp((bucket - 0.5) * _LOG_GROWTH)


def quantile(counts: Mapping[int, int], q: float) -> float | None:
    """The nearest-rank `q` quantile of the values counted in `counts`; None when empty."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    raise AssertionError("unreachable: the ranks add up to the total")

"""The insights counter codec: what a batch adds to each minute, as named counters a store adds up, and back.

Every insights store keeps a minute's numbers as counters it adds to (an SQLite row per counter, a
DynamoDB number attribute, a key of a Cosmos DB item's map), named `events_<type>`, `revenue`,
`rejected_<code>`, `duplicates`, `lag_<bucket>`, `country_<ISO code>`. `minute_changes` encodes a
batch's aggregate; `add_counter` decodes one stored counter into its `MinuteRow`. Refusals count at
the batch's own minute in the default segment; events at their event-time minute in their segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eventpipe.core.insight_rows import DEFAULT_SEGMENT

if TYPE_CHECKING:
    from eventpipe.core.aggregate import BatchAggregate
    from eventpipe.core.insight_rows import MinuteRow

USERS = "users"  # the sketch name of a minute's HyperLogLog of users; `s<step>` are the funnel's Theta sketches


def step_sketch_name(step: int) -> str:
    return f"s{step}"


@dataclass(slots=True)
class MinuteChange:
    """What one batch adds to one minute and segment: counters to add, sketches to merge (not serialized)."""

    minute: int
    segment: str = DEFAULT_SEGMENT
    counters: dict[str, int | float] = field(default_factory=dict)
    sketches: dict[str, Any] = field(default_factory=dict)  # USERS or s<step> -> the batch's sketch


def minute_changes(aggregate: BatchAggregate) -> list[MinuteChange]:
    """The batch's changes, by minute and segment in order (the same list on every retry)."""
    changes: dict[tuple[int, str], MinuteChange] = {}
    for minute, segment, bucket in aggregate.buckets():
        change = changes[minute, segment] = MinuteChange(minute, segment)
        change.counters.update((f"events_{t}", n) for t, n in bucket.events.items())
        change.counters["revenue"] = bucket.revenue
        change.counters.update((f"lag_{b}", n) for b, n in bucket.lag_ms.items())
        change.counters.update((f"country_{c}", n) for c, n in bucket.countries.items())
        if not bucket.users.is_empty():
            change.sketches[USERS] = bucket.users
        change.sketches.update((step_sketch_name(step), sessions) for step, sessions in bucket.sessions.items())
    refusals: dict[str, int | float] = {f"rejected_{code}": n for code, n in aggregate.rejected.items() if n}
    if aggregate.duplicates:
        refusals["duplicates"] = aggregate.duplicates
    if refusals:
        key = (aggregate.batch_minute, DEFAULT_SEGMENT)
        changes.setdefault(key, MinuteChange(aggregate.batch_minute)).counters.update(refusals)
    return [changes[key] for key in sorted(changes)]


def split_name(name: str) -> tuple[str, str]:
    """`events_page_view` -> (`events`, `page_view`); `revenue` -> (`revenue`, ``)."""
    metric, _, key = name.partition("_")
    return metric, key


def add_counter(row: MinuteRow, name: str, value: float) -> None:
    """A stored counter's total into its row; a name that is no counter (a store's own attribute) is skipped."""
    metric, key = split_name(name)
    if metric == "revenue":
        row.revenue = float(value)
    elif metric == "duplicates":
        row.duplicates = int(value)
    elif metric == "events":
        row.events[key] = int(value)
    elif metric == "rejected":
        row.rejected[key] = int(value)
    elif metric == "lag":
        row.lag_ms[int(key)] = int(value)
    elif metric == "country":
        row.countries[key] = int(value)


def join_name(metric: str, key: str) -> str:
    """The inverse of `split_name`, for stores that keep the metric and its key apart (SQLite)."""
    return f"{metric}_{key}" if key else metric

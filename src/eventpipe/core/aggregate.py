"""Per-minute aggregates of one batch's new curated events, ready to merge into the insights store.

Counts, revenue and the lag histogram add up; unique users are a HyperLogLog sketch (Apache
DataSketches), mergeable across batches and minutes. The funnel keeps, per minute and step, a
Theta sketch of the sessions that reached the step (core/funnel.py). Each is kept per segment
(core/segments.py): the events of no app sent by people in `minutes`, the others (an app's, bots')
in `segments`, so that insights can be read per app and without bots.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import datasketches

from eventpipe.core.funnel import FUNNEL_STEPS, new_step_sketch
from eventpipe.core.histogram import bucket_of_ms
from eventpipe.core.segments import DEFAULT_SEGMENT, segment_of
from eventpipe.core.timeutil import MINUTE_MS, minute_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from eventpipe.core.facts import Fact

HLL_LG_K = 14  # relative standard error 0.8%: "within 2%" holds at about 2.5 sigma
_FUNNEL_STEP = {name: number for number, name in enumerate(FUNNEL_STEPS)}


def new_user_sketch() -> datasketches.hll_sketch:
    return datasketches.hll_sketch(HLL_LG_K, datasketches.tgt_hll_type.HLL_8)


def merged_users(users: datasketches.hll_sketch, stored: bytes | None) -> bytes:
    """A batch's user sketch merged into a stored one, serialized as every store keeps it.

    The caller's sketch is left untouched.
    """
    sketches = [users] if stored is None else [users, datasketches.hll_sketch.deserialize(stored)]
    return _packed_union(sketches, users.lg_config_k)


def union_of(sketches: Iterable[bytes]) -> bytes | None:
    """The union of serialized user sketches, serialized like `merged_users`; None when there are none."""
    parsed = [datasketches.hll_sketch.deserialize(sketch) for sketch in sketches]
    return _packed_union(parsed, HLL_LG_K) if parsed else None


def _packed_union(sketches: Iterable[datasketches.hll_sketch], lg_k: int) -> bytes:
    """Always through a union, whose result packs 4 bits a register: a dense sketch is 8 KB, not 16."""
    union = datasketches.hll_union(lg_k)
    for sketch in sketches:
        union.update(sketch)
    return bytes(union.get_result(datasketches.tgt_hll_type.HLL_4).serialize_compact())


@dataclass(slots=True)
class MinuteAggregate:
    events: Counter[str] = field(default_factory=Counter)
    revenue: float = 0.0
    users: datasketches.hll_sketch = field(default_factory=new_user_sketch)
    lag_ms: Counter[int] = field(default_factory=Counter)  # histogram buckets (core/histogram.py)
    # step number (FUNNEL_STEPS) -> Theta sketch of the sessions that reached it in this minute
    sessions: dict[int, datasketches.update_theta_sketch] = field(default_factory=dict)
    countries: Counter[str] = field(default_factory=Counter)  # ISO code (enrichment.geo) -> events


@dataclass(slots=True)
class BatchAggregate:
    """One batch's contribution: curated events by event-time minute, refusals at the batch's minute."""

    batch_minute: int
    minutes: dict[int, MinuteAggregate] = field(default_factory=dict)  # the default segment's
    # (minute, segment) -> the events of another segment: an app's, or bots' (core/segments.py)
    segments: dict[tuple[int, str], MinuteAggregate] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0

    def buckets(self) -> Iterator[tuple[int, str, MinuteAggregate]]:
        """Every `(minute, segment, aggregate)` of the batch, the default segment first."""
        for minute, bucket in self.minutes.items():
            yield minute, DEFAULT_SEGMENT, bucket
        for (minute, segment), bucket in self.segments.items():
            yield minute, segment, bucket


HOUR_S = 3_600


def hour_of(minute: int) -> int:
    """The start of the UTC hour that holds `minute` (epoch seconds)."""
    return minute - minute % HOUR_S


def changed_hours(aggregate: BatchAggregate) -> list[int]:
    """The hours whose stored aggregates the batch changes: its event minutes, and its refusals' minute."""
    minutes = {minute for minute, _, _ in aggregate.buckets()}
    if aggregate.duplicates or any(aggregate.rejected.values()):
        minutes.add(aggregate.batch_minute)
    return sorted({hour_of(minute) for minute in minutes})


def aggregate_batch(
    facts: Iterable[Fact],
    *,
    received_at_ms: int,
    now_ms: int,
    rejected: dict[str, int],
    duplicates: int,
    measure_lag: bool = True,
) -> BatchAggregate:
    """Aggregate the new events of one batch. Lag is `now_ms` minus the (skew-corrected) event time."""
    result = BatchAggregate(batch_minute=minute_of(received_at_ms), duplicates=duplicates)
    result.rejected.update(rejected)
    minutes, segments = result.minutes, result.segments
    funnel_step = _FUNNEL_STEP.get
    # One pass, under 2 µs per event: the fields unpacked once, the default segment's bucket found
    # without building its name, the lag's bucket by a table lookup (ages are whole milliseconds).
    for _, event_type, event_time_ms, user_key, session_id, revenue, app_id, bot, country in facts:
        minute = event_time_ms // MINUTE_MS * 60
        if app_id is None and not bot:
            bucket = minutes.get(minute)
            if bucket is None:
                bucket = minutes[minute] = MinuteAggregate()
        else:
            segment = segment_of(app_id, bot)
            bucket = segments.get((minute, segment))
            if bucket is None:
                bucket = segments[minute, segment] = MinuteAggregate()
        bucket.events[event_type] += 1
        if country:
            bucket.countries[country] += 1
        bucket.revenue += revenue
        if user_key:
            bucket.users.update(user_key)
        if measure_lag:
            bucket.lag_ms[bucket_of_ms(now_ms - event_time_ms)] += 1
        step = funnel_step(event_type)
        if step is not None and session_id:
            sessions = bucket.sessions.get(step)
            if sessions is None:
                sessions = bucket.sessions[step] = new_step_sketch()
            sessions.update(session_id)
    return result

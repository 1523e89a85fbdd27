"""The conversion funnel of a window, counted from per-minute Theta sketches of session ids.

A session counts at a step when it reached that step inside the window and reached each earlier
step either inside the window or up to `SESSION_LOOKBACK_S` before it starts. The order in which
the steps happened does not matter, only that they happened.

Each minute keeps, per step, a Theta sketch (Apache DataSketches) of the sessions that reached the
step in that minute. For step `s`, with `W_s` the union of the window's step-`s` sketches and
`A_t` the union of the step-`t` sketches from the lookback's start to the window's end, the count
is the estimate of `W_s ∩ A_0 ∩ ... ∩ A_(s-1)`: a bounded number of sketches (one per minute and
step), whatever the number of sessions. Every store keeps the sketches and calls `funnel_counts`.

Accuracy (docs/insights.md has the figures): a minute's sketch is exact up to `STEP_LG_K`'s 1,024
sessions of a step, and beyond that keeps a sample of 1,024 of them (sampling rate
theta = 1,024 / sessions). A window's count `c` is then estimated from the entries kept at the
smallest theta among the minutes read (the busiest minute), with a relative standard error of
about `1 / sqrt(c * theta)`; an intersection is counted on the same sample, so a later step
(fewer sessions) has the larger relative error. While no minute passes 1,024 sessions of a step,
every count is exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import datasketches

if TYPE_CHECKING:
    from collections.abc import Iterable

FUNNEL_STEPS = ("page_view", "add_to_cart", "purchase")
# How far before a window a session's earlier steps are looked for: sessions end after 30 minutes
# of inactivity in most analytics tools, so two hours holds all but the longest.
SESSION_LOOKBACK_S = 2 * 3600
# A minute's sketch of one step keeps at most 2^10 session hashes (8 bytes each, about 6.5 KB
# serialized compressed): small enough that every batch can rewrite the minute's sketches.
STEP_LG_K = 10
# The read side unites up to 180 minutes: a union this large keeps every entry the minutes bring
# at the rates eventpipe targets, so a window's precision is set by the minutes, not by the union.
UNION_LG_K = 18


class StepSketch(NamedTuple):
    """The sessions of one segment (core/segments.py) that reached funnel step `step` (an index of
    FUNNEL_STEPS) in one minute, as a serialized Theta sketch: what every store keeps and reads back,
    in the order of its key (minute, segment, step), and what `funnel_counts` counts."""

    minute: int
    segment: str
    step: int
    sketch: bytes


def new_step_sketch() -> datasketches.update_theta_sketch:
    return datasketches.update_theta_sketch(STEP_LG_K)


def merged_step(sessions: datasketches.theta_sketch, stored: bytes | None) -> bytes:
    """A batch's step sketch united with a stored one, serialized (compressed) as every store keeps it.

    A union is idempotent: merging the same batch twice changes nothing, so a retried write
    needs no exactly-once guard of its own.
    """
    union = datasketches.theta_union(STEP_LG_K)
    union.update(sessions)
    if stored is not None:
        union.update(datasketches.compact_theta_sketch.deserialize(stored))
    return bytes(union.get_result().serialize(compress=True))


def funnel_counts(sketches: Iterable[StepSketch], *, since_minute: int, until_minute: int) -> list[int]:
    """Sessions per step of FUNNEL_STEPS for the window `since_minute <= minute < until_minute`.

    `sketches` outside `[since_minute -
    SESSION_LOOKBACK_S, until_minute)` and unknown steps are ignored, so a caller may pass a wider
    range.
    """
    lookback = since_minute - SESSION_LOOKBACK_S
    steps = len(FUNNEL_STEPS)
    in_window = [datasketches.theta_union(UNION_LG_K) for _ in range(steps)]
    reached = [datasketches.theta_union(UNION_LG_K) for _ in range(steps - 1)]  # since the lookback
    for minute, _segment, step, blob in sketches:
        if not (lookback <= minute < until_minute and 0 <= step < steps):
            continue
        sketch = datasketches.compact_theta_sketch.deserialize(blob)
        if step < steps - 1:
            reached[step].update(sketch)
        if minute >= since_minute:
            in_window[step].update(sketch)
    counts = []
    for step in range(steps):
        both = datasketches.theta_intersection()
        both.update(in_window[step].get_result())
        for before in range(step):
            both.update(reached[before].get_result())
        counts.append(round(both.get_result().get_estimate()))
    return counts

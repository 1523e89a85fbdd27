"""The conversion funnel of a window, counted from per-session step rows.

A session counts at a step when it reached that step inside the window and reached each earlier
step either inside the window or up to `SESSION_LOOKBACK_S` before it starts. The order in which
the steps happened does not matter, only that they happened. Stores that cannot count this in
their query language (DynamoDB) read the rows and call `funnel_counts`; SQLite counts the same in
SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventpipe.core.aggregate import FUNNEL_STEPS

if TYPE_CHECKING:
    from collections.abc import Iterable

# How far before a window a session's earlier steps are looked for: sessions end after 30 minutes
# of inactivity in most analytics tools, so two hours holds all but the longest.
SESSION_LOOKBACK_S = 2 * 3600


def funnel_counts(rows: Iterable[tuple[int, str, int]], *, since_minute: int, until_minute: int) -> list[int]:
    """Sessions per step of FUNNEL_STEPS for the window `since_minute <= minute < until_minute`.

    `rows` are `(minute, session_id, step)`; those outside `[since_minute - SESSION_LOOKBACK_S,
    until_minute)` and unknown steps are ignored, so a caller may pass a wider range.
    """
    lookback = since_minute - SESSION_LOOKBACK_S
    steps = len(FUNNEL_STEPS)
    reached: dict[str, set[int]] = {}  # since the lookback
    in_window: dict[str, set[int]] = {}
    for minute, session_id, step in rows:
        if not (lookback <= minute < until_minute and 0 <= step < steps):
            continue
        reached.setdefault(session_id, set()).add(step)
        if minute >= since_minute:
            in_window.setdefault(session_id, set()).add(step)
    counts = [0] * steps
    for session_id, window_steps in in_window.items():
        earlier = reached[session_id]
        for step in window_steps:
            if all(before in earlier for before in range(step)):
                counts[step] += 1
    return counts

"""The flow of an `InsightsStore`, once: a backend implements how it adds changes and reads a window.

As Powertools' idempotency `BasePersistenceLayer`: `BaseInsightsStore.apply` encodes the batch's
aggregate with the counter codec (core/insight_counters.py) and hands the backend its changes;
`read` turns what the backend read (counters, user sketches, funnel sketches) into the rows and
the funnel of the window. A backend implements `_apply_changes`, `_read_window`, `dirty_hours`
and `clear_dirty`. (The DynamoDB store reads through its sketch cache and has its own flow.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eventpipe.core.funnel import FUNNEL_STEPS, SESSION_LOOKBACK_S, StepSketch, funnel_counts
from eventpipe.core.insight_counters import add_counter, minute_changes
from eventpipe.core.insight_rows import InsightsRows, MinuteRow
from eventpipe.core.segments import ALL_PEOPLE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from eventpipe.core.aggregate import BatchAggregate
    from eventpipe.core.insight_counters import MinuteChange
    from eventpipe.core.segments import InsightsView


@dataclass(slots=True)
class WindowRead:
    """What a backend read for a window: stored counter totals, user sketches, funnel step sketches."""

    counters: list[tuple[int, str, str, float]] = field(default_factory=list)  # minute, segment, name, total
    users: list[tuple[int, str, bytes | None]] = field(default_factory=list)  # minute, segment, HLL sketch
    steps: list[StepSketch] = field(default_factory=list)


class BaseInsightsStore(ABC):
    def apply(self, batch_id: str, aggregate: BatchAggregate) -> bool:
        """Add a batch's aggregate atomically, once: False when the batch was applied already."""
        return self._apply_changes(batch_id, aggregate.batch_minute, minute_changes(aggregate))

    def read(
        self, since_minute: int, until_minute: int, *, funnel: bool = True, view: InsightsView = ALL_PEOPLE
    ) -> InsightsRows:
        """The stored rows with `since_minute <= minute < until_minute`, and the funnel of the segments
        `view` counts (its sessions' earlier steps read from the lookback before the window)."""
        if until_minute <= since_minute:
            return InsightsRows(minutes=[], funnel=[0] * len(FUNNEL_STEPS))
        steps_since = since_minute - SESSION_LOOKBACK_S if funnel else None
        window = self._read_window(since_minute, until_minute, steps_since)
        rows: dict[tuple[int, str], MinuteRow] = {}
        for minute, segment, name, total in window.counters:
            add_counter(rows.setdefault((minute, segment), MinuteRow(minute, segment=segment)), name, total)
        for minute, segment, users in window.users:
            rows.setdefault((minute, segment), MinuteRow(minute, segment=segment)).users = users
        counts = [0] * len(FUNNEL_STEPS)
        if funnel:
            counted = [sketch for sketch in window.steps if view.counts(sketch.segment)]
            counts = funnel_counts(counted, since_minute=since_minute, until_minute=until_minute)
        return InsightsRows(minutes=[rows[key] for key in sorted(rows)], funnel=counts)

    @abstractmethod
    def _apply_changes(self, batch_id: str, batch_minute: int, changes: Sequence[MinuteChange]) -> bool:
        """Add the counters and merge the sketches of `changes`, and mark each changed hour dirty, at most
        once per `batch_id` (False when it was applied already). `changes` may be empty."""

    @abstractmethod
    def _read_window(self, since_minute: int, until_minute: int, steps_since: int | None) -> WindowRead:
        """The counters and user sketches of `since_minute <= minute < until_minute`; the funnel's step
        sketches of `steps_since <= minute < until_minute` (none when `steps_since` is None)."""

    @abstractmethod
    def dirty_hours(self) -> list[tuple[int, int]]:
        """`(hour start, version)` of every hour changed since the export last cleared it, oldest first."""

    @abstractmethod
    def clear_dirty(self, hour: int, version: int) -> bool:
        """Forget that `hour` is dirty, only if it is still at `version`."""

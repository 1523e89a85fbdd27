"""Segments: the slices insights are kept in, so that one app's numbers and the bots' can be read apart.

Every curated event falls in one segment, named by its app and whether a bot sent it:

    ""            no app, a person      (every event before apps existed: stored as before)
    "h:app_1"     app_1, a person
    "b:app_1"     app_1, a bot
    "b:"          no app, a bot

Stores keep each minute's counters and sketches per segment; a read merges the segments a view
selects (`InsightsView`): one app or all, bots left out (the default) or counted in. Bot events
are always counted apart as `totals.bots`.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventpipe.core.insight_rows import DEFAULT_SEGMENT

__all__ = ["ALL_PEOPLE", "DEFAULT_SEGMENT", "InsightsView", "parse_segment", "segment_of", "view_of"]


def segment_of(app_id: str | None, bot: bool) -> str:
    if not app_id and not bot:
        return DEFAULT_SEGMENT
    return f"{'b' if bot else 'h'}:{app_id or ''}"


def parse_segment(segment: str) -> tuple[str | None, bool]:
    """`(app_id, bot)` of a segment name (the inverse of `segment_of`)."""
    if segment == DEFAULT_SEGMENT:
        return None, False
    return segment[2:] or None, segment.startswith("b:")


@dataclass(frozen=True, slots=True)
class InsightsView:
    """Which segments a read counts: those of `app_id` (all apps when None), with bots only if asked."""

    app_id: str | None = None
    include_bots: bool = False

    def covers(self, segment: str) -> bool:
        """The segment belongs to the view's app (bots or not): read it, if only for `totals.bots`."""
        app_id, _ = parse_segment(segment)
        return self.app_id is None or app_id == self.app_id

    def counts(self, segment: str) -> bool:
        """The segment's events count in totals, unique users, the funnel and the minutes."""
        app_id, bot = parse_segment(segment)
        return (self.app_id is None or app_id == self.app_id) and (self.include_bots or not bot)


ALL_PEOPLE = InsightsView()
MAX_APP_ID_CHARS = 64  # the envelope's limit on app_id
_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "": False}


def view_of(app_id: str | None, include_bots: str | None) -> InsightsView:
    """The view a query asks for (`?app_id=&include_bots=`); ValueError says what is wrong."""
    if app_id is not None and not 0 < len(app_id) <= MAX_APP_ID_CHARS:
        raise ValueError(f"app_id must have 1 to {MAX_APP_ID_CHARS} characters")
    flag = _FLAGS.get((include_bots or "").strip().lower())
    if flag is None:
        raise ValueError("include_bots must be true or false")
    return InsightsView(app_id=app_id, include_bots=flag)

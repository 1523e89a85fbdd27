"""The stored per-minute insights rows: what an `InsightsStore` reads back, and `core/insights.py` turns
into the insights document. A module of its own so that the ports and the document builder both import
it, and not each other."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_SEGMENT = ""  # core/segments.py: no app, people


@dataclass(slots=True)
class MinuteRow:
    minute: int  # epoch seconds of the minute's start
    events: dict[str, int] = field(default_factory=dict)
    revenue: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    users: bytes | None = None  # serialized HLL sketch
    lag_ms: dict[int, int] = field(default_factory=dict)  # histogram bucket -> events
    countries: dict[str, int] = field(default_factory=dict)  # ISO country code -> events
    segment: str = DEFAULT_SEGMENT  # the app and bot slice (core/segments.py); refusals are in the default one


@dataclass(slots=True)
class InsightsRows:
    """What a store read: one row per minute and segment (in any order), and the funnel of the
    segments the read's view counts."""

    minutes: list[MinuteRow]
    funnel: list[int]  # sessions that reached each of FUNNEL_STEPS in the window

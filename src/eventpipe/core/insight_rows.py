"""The stored per-minute insights rows: what an `InsightsStore` reads back, and `core/insights.py` turns
into the insights document. A module of its own so that the ports and the document builder both import
it, and not each other."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class MinuteRow:
    minute: int  # epoch seconds of the minute's start
    events: dict[str, int] = field(default_factory=dict)
    revenue: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    users: bytes | None = None  # serialized HLL sketch
    lag_ms: dict[int, int] = field(default_factory=dict)  # histogram bucket -> events


@dataclass(slots=True)
class InsightsRows:
    minutes: list[MinuteRow]
    funnel: list[int]  # sessions that reached each of FUNNEL_STEPS in the window

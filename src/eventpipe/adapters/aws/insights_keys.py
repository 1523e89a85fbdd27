"""The insights table's keys, shared by the store, its reader and the fold (dynamodb_insights.py has the shapes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eventpipe.core.segments import DEFAULT_SEGMENT

DIRTY_PK = "dirty"


def utc(minute: int, pattern: str) -> str:
    return datetime.fromtimestamp(minute, UTC).strftime(pattern)


def sort_key(minute: int, segment: str = DEFAULT_SEGMENT) -> str:
    return f"{minute:012d}" if segment == DEFAULT_SEGMENT else f"{minute:012d}#{segment}"


def item_key(kind: str, minute: int, segment: str = DEFAULT_SEGMENT) -> dict[str, Any]:
    """The `sketch#` (minute item) or `minute#` (counter item) key of a minute and segment."""
    return {"pk": {"S": f"{kind}#{utc(minute, '%Y-%m-%d')}"}, "sk": {"S": sort_key(minute, segment)}}


def minute_segment(sort_key: str) -> tuple[int, str]:
    """The minute and segment of a minute or counter item's sort key (the inverse of `sort_key`)."""
    minute, _, segment = sort_key.partition("#")
    return int(minute), segment


def dirty_key(hour: int) -> dict[str, Any]:
    return {"pk": {"S": DIRTY_PK}, "sk": {"S": f"{hour:012d}"}}

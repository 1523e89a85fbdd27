"""The insights export: the dirty hours' insights as partitioned JSON lines in the analytics bucket.

Athena and QuickSight read them (docs/aws.md, "Analytics export"); the raw bucket, which holds raw
IPs, is never theirs to read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.core.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.core.documents import ExportAnswer
    from eventpipe.handlers.services import Services

DEFAULT_WINDOW_MS = 2 * 60 * 60 * 1000  # a window given only its `until`
MAX_EXPORT_WINDOW_MS = 31 * 24 * 60 * 60 * 1000


def handle_export(event: Mapping[str, Any], services: Services) -> ExportAnswer:
    """`{}`: export every hour changed since its last export; `{"since", "until"}` (RFC 3339): backfill a window.

    Answers `{"keys": [...], "hours", "pending"}` (`pending`: dirty hours left for the next run).
    A schedule runs it with an empty event every few minutes.
    """
    from eventpipe.core.export import export_dirty, export_window  # loads the sketches only in this function
    from eventpipe.core.timeutil import minute_of, parse_window

    if event.get("since") is None and event.get("until") is None:
        result = export_dirty(services.insights, services.analytics)
        return {"keys": result.keys, "hours": result.hours, "pending": result.pending}
    try:
        since_ms, until_ms = parse_window(
            _text(event.get("since")),
            _text(event.get("until")),
            now_ms=services.clock.now_ms(),
            default_ms=DEFAULT_WINDOW_MS,
            max_ms=MAX_EXPORT_WINDOW_MS,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None  # the message says which rule the window broke
    result = export_window(
        services.insights, services.analytics, since_minute=minute_of(since_ms), until_minute=minute_of(until_ms) + 60
    )
    return {"keys": result.keys, "hours": result.hours, "pending": result.pending}


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InputError(f"since and until must be strings, not {type(value).__name__}")

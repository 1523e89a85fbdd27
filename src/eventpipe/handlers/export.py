"""The insights export: per-minute insights as date-partitioned JSON lines, for Athena and QuickSight."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.core.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.handlers.services import Services

EXPORT_WINDOW_MS = 2 * 60 * 60 * 1000  # late events keep changing the last hours' minutes
MAX_EXPORT_WINDOW_MS = 31 * 24 * 60 * 60 * 1000


def handle_export(event: Mapping[str, Any], services: Services) -> dict[str, Any]:
    """Export `{"since", "until"}` (RFC 3339), by default the last two hours; `{"keys": [...]}` written.

    A schedule runs it with an empty event every few minutes; a window backfills.
    """
    from eventpipe.core.export import export_insights  # loads the sketches only in this function
    from eventpipe.core.timeutil import minute_of, parse_window

    try:
        since_ms, until_ms = parse_window(
            _text(event.get("since")),
            _text(event.get("until")),
            now_ms=services.clock.now_ms(),
            default_ms=EXPORT_WINDOW_MS,
            max_ms=MAX_EXPORT_WINDOW_MS,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None  # the message says which rule the window broke
    keys = export_insights(
        services.insights, services.bucket, since_minute=minute_of(since_ms), until_minute=minute_of(until_ms) + 60
    )
    return {"keys": keys}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InputError(f"since and until must be strings, not {type(value).__name__}")

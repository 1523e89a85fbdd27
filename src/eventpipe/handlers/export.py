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
    from eventpipe.core.timeutil import minute_of, parse_iso_ms

    try:
        until_ms = parse_iso_ms(event["until"]) if event.get("until") else services.clock.now_ms()
        since_ms = parse_iso_ms(event["since"]) if event.get("since") else until_ms - EXPORT_WINDOW_MS
    except (TypeError, ValueError) as exc:
        raise InputError(f"since and until must be RFC 3339 times with an offset: {exc}") from None
    if not 0 <= until_ms - since_ms <= MAX_EXPORT_WINDOW_MS:
        raise InputError("since must be before until, and at most 31 days before it")
    keys = export_insights(
        services.insights, services.bucket, since_minute=minute_of(since_ms), until_minute=minute_of(until_ms) + 60
    )
    return {"keys": keys}

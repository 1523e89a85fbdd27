"""Replay: restart unfinished batches, or send the quarantine through the workflow again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.core.ingest import IngestSummary
from eventpipe.core.replay import replay_rejected, restart_unfinished

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.handlers.services import Services


def handle_replay(event: Mapping[str, Any], services: Services) -> dict[str, Any]:
    """`{}`: start pending and failed batches again (a failed one with a new execution).

    `{"rejected": true}`: replay the quarantined events of done batches, e.g. after a schema fix.
    Answers how many batches were started and how many events they hold; on AWS they finish
    asynchronously (`GET /batches/{id}` follows each).
    """
    if event.get("rejected") is True:
        summary = replay_quarantine(services)
    else:
        summary = IngestSummary()
        for record in restart_unfinished(services.batches, services.ingestor.starter, include_failed=True):
            summary.add(record)
    return {"batches": summary.batches, "received": summary.received, "unfinished": summary.unfinished}


def replay_quarantine(services: Services) -> IngestSummary:
    """The quarantine of done batches through the workflow again, in batches of the usual size."""
    return replay_rejected(
        services.quarantine,
        services.batches,
        services.ingestor,
        batch_size=services.settings.limits.max_batch_events,
        clock=services.clock,
    )

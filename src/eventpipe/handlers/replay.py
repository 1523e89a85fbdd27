"""Replay: restart unfinished batches, or send the quarantine through the workflow again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.core.errors import InputError
from eventpipe.core.ingest import IngestSummary
from eventpipe.core.replay import ReplaySummary, replay_rejected, restart_unfinished

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.core.documents import ReplayAnswer
    from eventpipe.handlers.services import Services


def handle_replay(event: Mapping[str, Any], services: Services) -> ReplayAnswer:
    """`{}`: start pending and failed batches again (a failed one with a new execution).

    `{"pending_older_than_s": N}`: start again only pending batches received more than N seconds ago,
    whose workflow did not start or was lost (on a schedule: a batch is never left behind).
    `{"rejected": true}`: replay the quarantined events of done batches, e.g. after a schema fix, and
    say how many records were left out and why (`skipped`).
    Answers how many batches were started and how many events they hold; on AWS they finish
    asynchronously (`GET /batches/{id}` follows each).
    """
    older_than_s = event.get("pending_older_than_s")
    if event.get("rejected") is True:
        replayed = replay_quarantine(services)
        return {
            "batches": replayed.batches,
            "received": replayed.received,
            "unfinished": replayed.unfinished,
            "skipped": dict(replayed.skipped),  # records left out, by why (see core/replay.py)
        }
    else:
        if older_than_s is not None and (type(older_than_s) is not int or older_than_s < 0):
            raise InputError("pending_older_than_s must be a whole number of seconds, 0 or more")
        before = None if older_than_s is None else services.clock.now_ms() - older_than_s * 1000
        restarted = restart_unfinished(
            services.batches,
            services.ingestor.starter,
            include_failed=older_than_s is None,
            received_before_ms=before,
        )
        summary = IngestSummary()
        for record in restarted:
            summary.add(record)
    return {"batches": summary.batches, "received": summary.received, "unfinished": summary.unfinished}


def replay_quarantine(services: Services) -> ReplaySummary:
    """The quarantine of done batches through the workflow again, in batches of the usual size."""
    return replay_rejected(
        services.quarantine,
        services.batches,
        services.ingestor,
        batch_size=services.settings.limits.max_batch_events,
        clock=services.clock,
    )

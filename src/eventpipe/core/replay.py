"""Replay quarantined events through the pipeline again, e.g. after a schema was added or fixed."""

from __future__ import annotations

import hashlib
from itertools import islice
from typing import TYPE_CHECKING

from eventpipe.core.ingest import IngestSummary
from eventpipe.core.readers import Line

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventpipe.core.ingest import Ingestor
    from eventpipe.core.ports import Quarantine


def replay_rejected(quarantine: Quarantine, ingestor: Ingestor, *, batch_size: int) -> IngestSummary:
    """Send every replayable quarantined event through ingest again, then drop its old record.

    Events refused at ingest for their size are kept (only their start was stored). A replay batch's
    id is derived from the records it takes, so a replay interrupted before the old records were
    dropped takes the same batch up again instead of quarantining its events twice.
    """
    summary = IngestSummary()
    replayable = (r for r in quarantine.iter_all() if r.stage != "ingest")
    while chunk := list(islice(replayable, batch_size)):
        keys = [(r.batch_id, r.index) for r in chunk]
        batch_id = "replay-" + hashlib.sha256(repr(keys).encode()).hexdigest()[:24]
        lines = [Line(index, r.raw.encode("utf-8", "backslashreplace")) for index, r in enumerate(chunk)]
        for record in ingestor.ingest(lines, source="replay", batch_id_for=_constant(batch_id)):
            summary.add(record)
        quarantine.remove(keys)
    return summary


def _constant(batch_id: str) -> Callable[[int], str]:
    return lambda _: batch_id

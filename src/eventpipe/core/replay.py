"""Replay quarantined events through the pipeline again, e.g. after a schema was added or fixed."""

from __future__ import annotations

import hashlib
from itertools import islice
from typing import TYPE_CHECKING

import orjson

from eventpipe.core.ingest import IngestSummary
from eventpipe.core.rawbatch import RawBatch

if TYPE_CHECKING:
    from eventpipe.core.ingest import Ingestor
    from eventpipe.core.ports import Clock, Quarantine


def replay_rejected(quarantine: Quarantine, ingestor: Ingestor, *, batch_size: int, clock: Clock) -> IngestSummary:
    """Send every replayable quarantined event through the workflow again.

    Each replay batch names the quarantine records it carries; its ValidateEnrich step updates
    the records of events rejected again and releases the others, so a replay interrupted at any
    point and run again neither loses a record nor keeps one twice. Events refused at ingest for
    their size are not replayable (only their start was kept).
    """
    summary = IngestSummary()
    replayable = (r for r in quarantine.iter_all() if r.stage != "ingest")
    while chunk := list(islice(replayable, batch_size)):
        origins = [[r.batch_id, r.index] for r in chunk]
        raw = RawBatch(
            batch_id="replay-" + hashlib.sha256(orjson.dumps(origins)).hexdigest()[:24],
            source="replay",
            received_at_ms=clock.now_ms(),
            # A raw batch holds one event a line; a newline is JSON whitespace between tokens.
            events=[r.raw.encode("utf-8", "backslashreplace").replace(b"\n", b" ") for r in chunk],
            positions=list(range(len(chunk))),
            origins=origins,
        )
        summary.add(ingestor.submit(raw))
    return summary

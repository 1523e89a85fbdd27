"""Replay quarantined events through the pipeline again, e.g. after a schema was added or fixed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING

from eventpipe.core.batch_ids import replay_batch_id
from eventpipe.core.ingest import IngestSummary
from eventpipe.core.model import BatchStatus
from eventpipe.core.rawbatch import RawBatch

if TYPE_CHECKING:
    from collections.abc import Iterator

    from eventpipe.core.documents import ReplayCounts
    from eventpipe.core.ingest import Ingestor
    from eventpipe.core.model import BatchRecord, Rejection
    from eventpipe.core.ports import BatchStore, Clock, Quarantine, WorkflowStarter

# Why a quarantine record is not replayed.
REFUSED_AT_INGEST = "refused_at_ingest"  # not JSON, too large (only its start kept), or no event_id/event_type
BATCH_NOT_DONE = "batch_not_done"  # its batch may still curate the event: finish it first


@dataclass(slots=True)
class ReplaySummary(IngestSummary):
    """A replay's outcome, and the quarantine records it left out, by why."""

    skipped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> ReplayCounts:
        return {**IngestSummary.as_dict(self), "skipped": dict(sorted(self.skipped.items()))}


def replay_rejected(
    quarantine: Quarantine, batches: BatchStore, ingestor: Ingestor, *, batch_size: int, clock: Clock
) -> ReplaySummary:
    """Send the quarantined events of finished batches through the workflow again.

    Each replay batch names the quarantine records it carries; its steps update the records of
    events rejected again and release the others when the batch is done, so a replay that stops
    at any point loses no record and keeps none twice. Records of batches not yet done are left
    alone (their batch may still curate those events); so are events refused at ingest for their
    size, of which only the start was kept. Run unfinished batches first (`eventpipe replay`). The
    summary counts the records left out in `skipped`, by why.
    """
    summary = ReplaySummary()
    run = clock.now_ms()  # each run replays afresh: a schema may have been added since the last one
    records = _replayable(quarantine, batches, summary.skipped)  # one pass: records rejected again are not met twice
    while chunk := list(islice(records, batch_size)):
        origins = [[r.batch_id, r.index] for r in chunk]
        raw = RawBatch(
            batch_id=replay_batch_id(run, origins),
            source="replay",
            received_at_ms=clock.now_ms(),
            # A raw batch holds one event a line; a newline is JSON whitespace between tokens.
            events=[r.raw.encode("utf-8", "backslashreplace").replace(b"\n", b" ") for r in chunk],
            positions=list(range(len(chunk))),
            origins=origins,
        )
        summary.add(ingestor.submit(raw))
    return summary


def _replayable(quarantine: Quarantine, batches: BatchStore, skipped: Counter[str]) -> Iterator[Rejection]:
    done: dict[str, bool] = {}
    for record in quarantine.iter_all():
        if record.batch_id not in done:
            batch = batches.get(record.batch_id)
            done[record.batch_id] = batch is not None and batch.status is BatchStatus.DONE
        if not done[record.batch_id]:
            skipped[BATCH_NOT_DONE] += 1
        elif record.stage == "ingest":
            skipped[REFUSED_AT_INGEST] += 1
        else:
            yield record


def restart_unfinished(
    batches: BatchStore, starter: WorkflowStarter, *, include_failed: bool, received_before_ms: int | None = None
) -> list[BatchRecord]:
    """Start pending batches again (a crash or a lost execution left them) and, if asked, failed ones;
    with `received_before_ms`, only batches received before then.

    Safe while an execution of a pending batch still runs: every step may run twice.
    """
    restarted = []
    for record in batches.unfinished():
        failed = record.status is BatchStatus.FAILED
        if failed and not include_failed:
            continue
        if received_before_ms is not None and record.received_at_ms >= received_before_ms:
            continue
        starter.start(record.batch_id, record.raw_key, retry=failed)
        restarted.append(batches.get(record.batch_id) or record)
    return restarted

"""`GET /batches/{id}` for a request that micro-batching grouped with others (core/grouping.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventpipe.core.grouping import member_range, request_outcome, valid_event_ids
from eventpipe.core.model import BatchStatus
from eventpipe.core.rawbatch import RawBatch

if TYPE_CHECKING:
    from eventpipe.core.documents import BatchDocument
    from eventpipe.core.model import BatchRecord
    from eventpipe.handlers.services import Services


def grouped_request_document(record: BatchRecord, services: Services) -> BatchDocument | None:
    """The batch document of a grouped request: its own counts and rejections, its group's status, and
    `group: {batch_id, first_index}`; None when its group is unknown (a store lost it)."""
    group = services.batches.get(record.group_id or "")
    if group is None:
        return None
    rejections = services.quarantine.for_batch(group.batch_id)
    group_raw = RawBatch.decode(services.bucket.get(group.raw_key))
    owners: dict[str, str] = {}
    if group.status is BatchStatus.DONE:  # the owners of this request's events only, not the whole group's
        refused = {r.index for r in rejections}
        low, high = member_range(record, group_raw)
        mine = [event_id for position, event_id in valid_event_ids(group_raw, refused, below=high) if position >= low]
        owners = services.steps.curated.owners(mine)
    outcome = request_outcome(record, group, group_raw, rejections, owners)
    return {
        "batch_id": record.batch_id,
        "status": str(outcome.status),
        "received": record.received,
        "curated": outcome.curated,
        "duplicates": outcome.duplicates,
        "rejected": len(outcome.rejections),
        "rejections": [
            {"index": r.index, "event_id": r.event_id, "reasons": [x.as_dict() for x in r.reasons]}
            for r in outcome.rejections
        ],
        "group": {"batch_id": group.batch_id, "first_index": record.first_index},
    }

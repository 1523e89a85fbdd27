"""Queued requests (AWS micro-batching): where the request index says each one is.

A queued request's id (core/batch_ids.py) carries its time and event count, so `GET /batches/{id}`
can answer for it before its group exists, and the request index can file it under a time bucket:
a lookup reads one bucket's few items, never one item per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventpipe.core.batch_ids import queued_id_facts
from eventpipe.core.model import BatchRecord, BatchStatus

GROUPABLE_SOURCE = "http"  # request batches; file batches are full already
# A request's id tells its time (core/batch_ids.py); the request index keeps one item per group and
# time bucket, listing the group's requests of that bucket: a lookup reads one bucket, never one item
# per request.
INDEX_BUCKET_MS = 10_000


def is_queued_answer(body: str) -> bool:
    """Whether a 202's body (`{"batch_id": ...}` first) names a queued request, without parsing it all."""
    return body.startswith('{"batch_id":"q') and queued_id_facts(body[13:44]) is not None


def index_bucket(received_at_ms: int) -> int:
    return received_at_ms // INDEX_BUCKET_MS


@dataclass(frozen=True, slots=True)
class IndexedRequest:
    """A request as the request index lists it: its group, and where its events start in the group."""

    batch_id: str
    group_id: str
    first_index: int

    def record(self, raw_key: str) -> BatchRecord:
        """The request's batch record, derived (none is stored): grouped into its group."""
        received_at_ms, received = queued_id_facts(self.batch_id) or (0, 0)
        return BatchRecord(
            self.batch_id,
            raw_key,
            GROUPABLE_SOURCE,
            received_at_ms,
            received,
            status=BatchStatus.GROUPED,
            group_id=self.group_id,
            first_index=self.first_index,
        )

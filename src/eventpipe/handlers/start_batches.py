"""Start the batches whose first start failed at ingest (an asynchronous invocation of `start_batches` each).

The invocation's event is `{"batch_id", "raw_key", "retry"}`, sent by `adapters/aws/start_queue.py`. A
batch that is gone or done by now is skipped; an event that is not such a document is dropped with a
log line (retrying it could never succeed). A start that fails raises, so that Lambda runs the
invocation again (twice, about one and two minutes later), then sends it to the dead-letter queue.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import orjson

from eventpipe.core.batch_ids import is_batch_id
from eventpipe.core.model import BatchStatus

if TYPE_CHECKING:
    from eventpipe.core.ports import BatchStore, WorkflowStarter

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4096  # a start message is under 200 bytes; anything larger is not ours

Outcome = Literal["started", "skipped", "dropped"]


def start_queued_batch(body: str, batches: BatchStore, starter: WorkflowStarter) -> Outcome:
    """Start the batch a start-retry document names, unless it is done or unknown."""
    document = _parse(body)
    if document is None:
        log.error("start retry dropped: not a start document: %.200r", body)
        return "dropped"
    batch_id, _raw_key, retry = document
    record = batches.get(batch_id)
    if record is None or record.status is BatchStatus.DONE:
        return "skipped"
    starter.start(batch_id, record.raw_key, retry=retry)
    return "started"


def _parse(body: str) -> tuple[str, str, bool] | None:
    if len(body.encode()) > MAX_MESSAGE_BYTES:
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    batch_id, raw_key, retry = document.get("batch_id"), document.get("raw_key"), document.get("retry", False)
    if not (isinstance(batch_id, str) and is_batch_id(batch_id) and isinstance(raw_key, str) and raw_key):
        return None
    if not isinstance(retry, bool):
        return None
    return batch_id, raw_key, retry

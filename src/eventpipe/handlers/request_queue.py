"""The batching function (AWS): SQS delivers queued requests, up to 99 a call after a batching window,
and they become group batches, one workflow execution each (core/grouping.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from eventpipe.core.errors import StorageError
from eventpipe.core.grouping import chunks, decode_message, record_and_start

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.core.model import Limits
    from eventpipe.core.ports import GroupStore, RawBucket, WorkflowStarter
    from eventpipe.core.rawbatch import RawBatch

log = logging.getLogger(__name__)


def is_queue_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and bool(records) and records[0].get("eventSource") == "aws:sqs"


def handle_request_queue(
    event: Mapping[str, Any], *, bucket: RawBucket, groups: GroupStore, starter: WorkflowStarter, limits: Limits
) -> dict[str, Any]:
    """Group the delivered requests and start their executions; the SQS partial batch response.

    A message that is not a queued request, or whose group could not be stored, is reported as
    failed: SQS delivers it again, and after the queue's receive limit moves it to the dead-letter
    queue. The others are done with, and deleted.
    """
    failed: list[str] = []
    members: list[RawBatch] = []
    message_of: dict[str, str] = {}
    for record in event.get("Records", []):
        message_id = str(record.get("messageId"))
        try:
            raw = decode_message(str(record.get("body", "")), max_bytes=2 * limits.max_body_bytes)
        except ValueError as exc:
            log.error("message %s is not a queued request: %s", message_id, exc)
            failed.append(message_id)
            continue
        members.append(raw)
        message_of[raw.batch_id] = message_id
    for chunk in chunks(members, max_events=limits.max_batch_events):
        try:
            record_and_start(chunk, bucket=bucket, groups=groups, starter=starter)
        except StorageError as exc:
            log.error("a group of %d requests was not stored (SQS delivers them again): %s", len(chunk), exc)
            failed.extend(message_of[raw.batch_id] for raw in chunk)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

"""A workflow start that failed (throttled, or Step Functions briefly unavailable) is retried within a minute.

Ingest has already stored the batch, so it answers 202 whatever happens here; without this, the
batch would wait for the pending-batch schedule (10 minutes or more). `DeferringStarter` puts the
start on an SQS queue instead, with a short delay; the `start_batches` function consumes the queue
and starts the batch (`handlers/start_batches.py`). A start that fails again goes back to the queue
after its visibility timeout, and after the queue's `maxReceiveCount` to the dead-letter queue; the
schedule still restarts the batch in the end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.errors import AWS_ERRORS, error_code
from eventpipe.core.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

    from eventpipe.core.ports import WorkflowStarter

log = logging.getLogger(__name__)

# Seconds before the first retry: long enough for a throttled account's token bucket to refill.
START_RETRY_DELAY_S = 10


class DeferringStarter:
    """The `WorkflowStarter` port: start now, or, when that fails, queue the start for a retry."""

    def __init__(
        self,
        starter: WorkflowStarter,
        queue_url: str,
        client: SQSClient | None = None,
        *,
        delay_s: int = START_RETRY_DELAY_S,
    ) -> None:
        self.starter = starter
        self.queue_url = queue_url
        self.delay_s = delay_s
        self._client: SQSClient = client or make_client("sqs")

    def start(self, batch_id: str, raw_key: str, *, retry: bool = False) -> None:
        try:
            self.starter.start(batch_id, raw_key, retry=retry)
        except StorageError as failed:
            body = orjson.dumps({"batch_id": batch_id, "raw_key": raw_key, "retry": retry}).decode()
            try:
                self._client.send_message(QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=self.delay_s)
            except AWS_ERRORS as exc:
                # Neither worked: the caller keeps the batch pending for the schedule to restart.
                log.error("cannot queue the start of batch %s: %s", batch_id, error_code(exc))
                raise failed from exc
            log.warning("start of batch %s queued for a retry in %d s: %s", batch_id, self.delay_s, failed)

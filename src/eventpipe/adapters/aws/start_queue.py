"""A workflow start that failed (throttled, or Step Functions briefly unavailable) is retried within a minute.

Ingest has already stored the batch, so it answers 202 whatever happens here; without this, the
batch would wait for the pending-batch schedule (10 minutes or more). `DeferringStarter` hands the
start to the `start_batches` function as an asynchronous invocation instead
(`adapters/aws/lambda_async.py`), which starts the batch (`handlers/start_batches.py`). A start that
fails again raises there, and Lambda runs it again about one and then two minutes later, then sends
it to the dead-letter queue; the schedule still restarts the batch in the end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from eventpipe.core.errors import StorageError

if TYPE_CHECKING:
    from eventpipe.adapters.aws.lambda_async import AsyncInvoker
    from eventpipe.core.ports import WorkflowStarter

log = logging.getLogger(__name__)


class DeferringStarter:
    """The `WorkflowStarter` port: start now, or, when that fails, hand the start to `start_batches`."""

    def __init__(self, starter: WorkflowStarter, retries: AsyncInvoker) -> None:
        self.starter = starter
        self.retries = retries

    def start(self, batch_id: str, raw_key: str, *, retry: bool = False) -> None:
        try:
            self.starter.start(batch_id, raw_key, retry=retry)
        except StorageError as failed:
            try:
                self.retries.send(orjson.dumps({"batch_id": batch_id, "raw_key": raw_key, "retry": retry}))
            except StorageError as exc:
                # Neither worked: the caller keeps the batch pending for the schedule to restart.
                log.error("cannot hand the start of batch %s to %s: %s", batch_id, self.retries.function_name, exc)
                raise failed from exc
            log.warning("start of batch %s handed to %s for a retry: %s", batch_id, self.retries.function_name, failed)

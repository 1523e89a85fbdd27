"""QueueWorkflowStarter against Azurite: one base64 claim-check message per start."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import pytest
from azure.storage.queue import QueueClient
from eventpipe_azure.queue import BatchMessage, QueueWorkflowStarter

from eventpipe.core.errors import StorageError

if TYPE_CHECKING:
    from tests.azure.conftest import Azurite


def test_start_queues_the_batch_reference(queue: QueueClient) -> None:
    # WHEN two batches are started, the second as a retry
    starter = QueueWorkflowStarter(queue.queue_name, queue)
    starter.start("h0001", "raw/h0001.ndjson")
    starter.start("h0002", "raw/h0002.ndjson", retry=True)
    # THEN the queue holds one message each, base64 (what the Functions queue trigger decodes), naming the batch
    bodies = [base64.b64decode(m.content) for m in queue.receive_messages(messages_per_page=10)]
    assert [BatchMessage.decode(body) for body in bodies] == [
        BatchMessage("h0001", "raw/h0001.ndjson", retry=False),
        BatchMessage("h0002", "raw/h0002.ndjson", retry=True),
    ]


def test_missing_queue_is_storage_error(azurite: Azurite) -> None:
    client = QueueClient.from_connection_string(azurite.connection_string, "no-such-queue")
    with pytest.raises(StorageError, match="cannot queue the workflow of batch h0001 on no-such-queue"):
        QueueWorkflowStarter("no-such-queue", client).start("h0001", "raw/h0001.ndjson")


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"batch_id": "x"}', b"[1]"])
def test_a_foreign_message_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError, match="not a batch message"):
        BatchMessage.decode(body)

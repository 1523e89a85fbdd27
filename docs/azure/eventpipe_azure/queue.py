"""Start the workflow through an Azure Storage queue: one message per batch, a claim check.

The message names the batch and its raw blob, never its events (a queue message holds 64 KiB).
A queue-triggered function (`run_batch` in function_app.py) runs the workflow for it; a message
whose function crashed or timed out becomes visible again and is run again (every step is
retry-safe), and after `maxDequeueCount` tries it moves to the `-poison` queue.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe_azure.errors import AZURE_ERRORS, storage_error

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient


@dataclass(frozen=True)
class BatchMessage:
    batch_id: str
    raw_key: str
    retry: bool = False

    def encode(self) -> bytes:
        return orjson.dumps({"batch_id": self.batch_id, "raw_key": self.raw_key, "retry": self.retry})

    @classmethod
    def decode(cls, body: bytes) -> BatchMessage:
        """Raises ValueError for a message that is not one of ours (it then goes to the poison queue)."""
        try:
            fields: Any = orjson.loads(body)
            return cls(str(fields["batch_id"]), str(fields["raw_key"]), bool(fields.get("retry", False)))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a batch message: {body[:200]!r}") from exc


class QueueWorkflowStarter:
    """The `WorkflowStarter` port on a Storage queue. A repeated start only runs the steps again: harmless."""

    def __init__(self, queue: str, client: QueueClient | None = None, *, account_url: str | None = None) -> None:
        """`client` for tests; otherwise a client for `account_url` signed in with the managed identity."""
        self.queue = queue
        if client is None:
            if not account_url:
                raise ValueError("QueueWorkflowStarter needs a QueueClient or an account_url")
            from azure.storage.queue import QueueClient

            from eventpipe_azure.clients import default_credential, timeouts

            client = QueueClient(account_url, queue, credential=default_credential(), **timeouts())
        self._client = client

    def start(self, batch_id: str, raw_key: str, *, retry: bool = False) -> None:
        # The Functions queue trigger reads base64 messages by default (host.json messageEncoding).
        text = base64.b64encode(BatchMessage(batch_id, raw_key, retry).encode()).decode("ascii")
        try:
            self._client.send_message(text)
        except AZURE_ERRORS as exc:
            raise storage_error(exc, f"cannot queue the workflow of batch {batch_id} on {self.queue}") from exc

"""The request queue on SQS: ingest sends each small request as one message (micro-batching)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.errors import AWS_ERRORS, storage_error

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

SQS_MAX_MESSAGE_BYTES = 256 * 1024


class SqsRequestQueue:
    """The `RequestQueue` port. SendMessage returns once SQS has stored the message redundantly."""

    max_message_bytes = SQS_MAX_MESSAGE_BYTES

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._client: SQSClient = client or make_client("sqs")

    def send(self, body: bytes) -> None:
        try:
            self._client.send_message(QueueUrl=self.queue_url, MessageBody=body.decode("ascii"))
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot send a request to {self.queue_url}") from exc

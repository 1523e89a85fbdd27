"""The request stream on Amazon Data Firehose: ingest puts each request as one record (micro-batching).

Firehose stores a record in three facilities of the Region before PutRecord answers, then buffers
records for the stream's interval and writes them to the raw bucket under `requests/` as one
object, one line a record; that object takes the file-drop path (handlers/request_objects.py).
"""

from __future__ import annotations

from typing import Any

from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.errors import AWS_ERRORS, storage_error

FIREHOSE_MAX_RECORD_BYTES = 1_000 * 1024  # PutRecord's limit on a record, before base64


class FirehoseRequestStream:
    """The `RequestQueue` port. A record is a line: `body` (base64, no newline in it) and a newline."""

    max_message_bytes = FIREHOSE_MAX_RECORD_BYTES - 1

    def __init__(self, stream_name: str, client: Any | None = None) -> None:
        self.stream_name = stream_name
        self._client = client or make_client("firehose")

    def send(self, body: bytes) -> None:
        try:
            self._client.put_record(DeliveryStreamName=self.stream_name, Record={"Data": body + b"\n"})
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot put a request on {self.stream_name}") from exc

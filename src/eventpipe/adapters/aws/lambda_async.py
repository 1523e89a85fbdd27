"""Work handed to a Lambda function asynchronously: Lambda's own queue, retries and dead letters.

An asynchronous invocation (`InvocationType=Event`) is queued by Lambda, which answers 202 once it has
stored it; a run that fails is tried twice more (about one and then two minutes later), and a run that
fails all three goes to the function's on-failure destination, the dead-letter queue (the template's
`EventInvokeConfig`). So it gives what an SQS queue and its event source mapping gave the start retries
and the byte ranges of large files, without Lambda polling a queue around the clock, which costs
about $0.26 a month a queue with no traffic at all (docs/cost.md, "Idle").
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from eventpipe.adapters.aws.clients import make_client

if TYPE_CHECKING:
    import botocore.session
from eventpipe.adapters.aws.errors import AWS_ERRORS, storage_error

MAX_PAYLOAD_BYTES = 256 * 1024  # Lambda's limit for an asynchronous invocation's payload


class AsyncInvoker:
    """Queues one invocation of `function_name` per `send`; `StorageError` when Lambda did not take it."""

    def __init__(
        self, function_name: str, client: Any | None = None, *, session: botocore.session.Session | None = None
    ) -> None:
        self.function_name = function_name
        self._given, self._session = client, session

    @cached_property
    def _client(self) -> Any:
        # Built at the first send, not at cold start: most invocations never hand anything on.
        return self._given if self._given is not None else make_client("lambda", self._session)

    def send(self, payload: bytes) -> None:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"an asynchronous invocation takes at most {MAX_PAYLOAD_BYTES} bytes, not {len(payload)}")
        try:
            self._client.invoke(FunctionName=self.function_name, InvocationType="Event", Payload=payload)
        except AWS_ERRORS as exc:
            raise storage_error(exc, f"cannot invoke {self.function_name}") from exc

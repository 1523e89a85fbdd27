"""What the adapters hand on as asynchronous Lambda invocations, recorded instead of sent.

moto runs no Lambda function, so an `AsyncInvoker`'s client is answered by botocore's own hooks, as
Lambda answers an `InvocationType=Event` call (202, queued); a test then runs each recorded event
itself, as Lambda would, or fails it to see what a retry does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from botocore.awsrequest import AWSResponse

if TYPE_CHECKING:
    from eventpipe.adapters.aws.lambda_async import AsyncInvoker


class Invocations:
    """The events sent through one or more `AsyncInvoker`s, by function name, oldest first."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.refuse = False  # answer as Lambda does when it cannot take the invocation

    def watch(self, invoker: AsyncInvoker) -> None:
        events = invoker._client.meta.events  # the client is built here, before its first call
        events.register("before-parameter-build.lambda.Invoke", self._record)
        events.register("before-call.lambda.Invoke", self._answer)

    def events(self, function_name: str) -> list[dict[str, Any]]:
        return [event for name, event in self.sent if name == function_name]

    def _record(self, params: dict[str, Any], **_kwargs: Any) -> None:
        assert params["InvocationType"] == "Event"
        if not self.refuse:
            self.sent.append((params["FunctionName"], orjson.loads(params["Payload"])))

    def _answer(self, **_kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        if self.refuse:
            error = {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}
            return AWSResponse("https://lambda", 429, {}, None), error
        return AWSResponse("https://lambda", 202, {}, None), {"StatusCode": 202}

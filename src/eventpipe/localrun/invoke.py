"""The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`) over the functions of
`handlers/functions.py`, so `aws lambda invoke --endpoint-url ...` and boto3 work against the
local runtime as against AWS: the same status codes, headers and error documents.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.handlers.functions import LOCAL_FUNCTIONS, SILENT
from eventpipe.handlers.http_error import HttpError

if TYPE_CHECKING:
    from eventpipe.handlers.functions import Function
    from eventpipe.handlers.services import Services
    from eventpipe.localrun.apigw import Answer, Headers

log = logging.getLogger(__name__)
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # a synchronous invocation's limit in AWS
REGION = "us-east-1"
# A name, `name:qualifier`, `account:function:name` or a full ARN, as the Invoke API takes them.
_FUNCTION_NAME = re.compile(
    r"^(?:arn:aws[a-z-]*:lambda:[a-z0-9-]+:)?(?:\d{12}:function:)?(?P<name>[A-Za-z0-9_-]{1,64})(?::[A-Za-z0-9$_-]+)?$"
)


@dataclass(frozen=True)
class Invocation:
    function: Function
    invocation_type: str  # RequestResponse, Event or DryRun
    event: Any


class InvokeError(HttpError):
    """An answer of the Invoke API itself (not of the function): its status and error type, answered in
    Lambda's shape (the type in a header, `{"Type", "Message"}`) so that SDKs raise their own exception."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(status, error_type, message)

    @property
    def error_type(self) -> str:
        return self.code

    def answer(self) -> Answer:
        headers = [(b"content-type", b"application/json"), (b"x-amzn-errortype", self.error_type.encode())]
        return self.status, headers, orjson.dumps({"Type": "User", "Message": str(self)})


def invocation(function_name: str, invocation_type: str | None, payload: bytes) -> Invocation:
    """Check one request to the Invoke API; `InvokeError` says why it cannot run."""
    match = _FUNCTION_NAME.fullmatch(function_name)
    function = LOCAL_FUNCTIONS.get(match["name"]) if match else None
    if function is None:
        arn = f"arn:aws:lambda:{REGION}:000000000000:function:{function_name}"
        raise InvokeError(404, "ResourceNotFoundException", f"Function not found: {arn}")
    kind = invocation_type or "RequestResponse"
    if kind not in ("RequestResponse", "Event", "DryRun"):
        raise InvokeError(400, "InvalidParameterValueException", f"unknown X-Amz-Invocation-Type {kind!r}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise payload_too_large()
    try:
        event = orjson.loads(payload) if payload.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise InvokeError(
            400, "InvalidRequestContentException", f"Could not parse request body into json: {exc}"
        ) from None
    return Invocation(function, kind, event)


def payload_too_large() -> InvokeError:
    message = f"Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the invoke"
    return InvokeError(413, "RequestTooLargeException", message)


def answer(function_name: str, invocation_type: str | None, payload: bytes, services: Services) -> Answer:
    """The Invoke API's answer to one request. An `Event` invocation runs before it is answered
    (202): AWS queues it durably, and here an answer given before the run could be lost with it."""
    try:
        call = invocation(function_name, invocation_type, payload)
    except InvokeError as exc:
        return exc.answer()
    if call.invocation_type == "DryRun":
        return 204, [], b""
    status, headers, body = run(call, services)
    if call.invocation_type == "Event":
        return 202, [], b""
    return status, headers, body


def run(call: Invocation, services: Services) -> Answer:
    """Run the function as Lambda does: its result, or its exception as an `Unhandled` function error."""
    headers: Headers = [(b"content-type", b"application/json"), (b"x-amz-executed-version", b"$LATEST")]
    try:
        return 200, headers, orjson.dumps(call.function.run(call.event, services, SILENT))
    except Exception as exc:  # the function's failure is the caller's answer, as in AWS
        log.warning("function raised %s: %s", type(exc).__name__, exc)
        error = {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": str(uuid.uuid4()),
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
        return 200, [*headers, (b"x-amz-function-error", b"Unhandled")], orjson.dumps(error)

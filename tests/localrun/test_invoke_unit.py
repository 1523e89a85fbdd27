"""localrun/invoke.py: which requests the Invoke API runs, and how it answers (no server, no network)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from eventpipe.handlers.functions import LOCAL_FUNCTIONS, Function
from eventpipe.localrun import invoke
from eventpipe.localrun.invoke import INVOKE_PATH, MAX_PAYLOAD_BYTES, Invocation, InvokeError, invocation, run


@pytest.mark.parametrize(
    "name",
    [
        "ingest",
        "ingest:$LATEST",
        "ingest:7",
        "ingest:live_alias-1",
        "123456789012:function:ingest",
        "123456789012:function:ingest:$LATEST",
        "arn:aws:lambda:us-east-1:123456789012:function:ingest",
        "arn:aws:lambda:eu-central-1:123456789012:function:ingest:prod",
        "arn:aws-cn:lambda:cn-north-1:123456789012:function:ingest",
        "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:ingest",
    ],
)
def test_name_forms_of_the_invoke_api_resolve(name: str) -> None:
    assert invocation(name, None, b"{}").function is LOCAL_FUNCTIONS["ingest"]


@pytest.mark.parametrize(
    "name",
    [
        "",
        "nope",
        "Ingest",  # function names are case sensitive
        "ingest:",
        "ingest:a:b",
        "ingest/x",
        "function:ingest",
        "12345:function:ingest",
        "arn:aws:lambda:us-east-1:function:ingest",
        "arn:aws:s3:us-east-1:123456789012:function:ingest",
        "a" * 65,
        "ingest\n",
        "start_batches",  # fed by AWS queues only: nothing calls them on one machine
        "batch_requests",
    ],
)
def test_other_names_are_resource_not_found(name: str) -> None:
    with pytest.raises(InvokeError) as caught:
        invocation(name, None, b"{}")
    assert (caught.value.status, caught.value.error_type) == (404, "ResourceNotFoundException")
    assert "Function not found" in str(caught.value)


@pytest.mark.parametrize(("header", "kind"), [(None, "RequestResponse"), ("Event", "Event"), ("DryRun", "DryRun")])
def test_invocation_types(header: str | None, kind: str) -> None:
    assert invocation("ingest", header, b"{}").invocation_type == kind


@pytest.mark.parametrize("header", ["event", "Async", "RequestResponse ", "DryRun,Event"])
def test_an_unknown_invocation_type_is_invalid_parameter(header: str) -> None:
    with pytest.raises(InvokeError) as caught:
        invocation("ingest", header, b"{}")
    assert (caught.value.status, caught.value.error_type) == (400, "InvalidParameterValueException")


def test_a_payload_at_the_limit_is_taken_and_one_byte_more_is_too_large() -> None:
    # GIVEN a JSON payload of exactly the synchronous limit
    at_limit = b'"' + b"a" * (MAX_PAYLOAD_BYTES - 2) + b'"'
    assert len(at_limit) == MAX_PAYLOAD_BYTES
    # THEN it is read, and one byte more is refused as AWS refuses it
    assert invocation("ingest", None, at_limit).event == "a" * (MAX_PAYLOAD_BYTES - 2)
    with pytest.raises(InvokeError) as caught:
        invocation("ingest", None, at_limit + b" ")
    assert (caught.value.status, caught.value.error_type) == (413, "RequestTooLargeException")


@pytest.mark.parametrize("payload", [b"", b"   ", b"\n\t"])
def test_an_empty_payload_is_an_empty_event(payload: bytes) -> None:
    assert invocation("replay", None, payload).event == {}


@pytest.mark.parametrize(("payload", "event"), [(b"[1, 2]", [1, 2]), (b'"x"', "x"), (b"5", 5), (b"null", None)])
def test_any_json_value_is_an_event(payload: bytes, event: Any) -> None:
    assert invocation("ingest", None, payload).event == event


@pytest.mark.parametrize(
    "payload", [b"{nope", b"NaN", b"[" * 100_000, b'"\\ud800"', b"\xff\xfe", b"\xed\xa0\x80", b"1" * 5000, b"{}{}"]
)
def test_a_payload_that_is_not_json_is_invalid_request_content(payload: bytes) -> None:
    with pytest.raises(InvokeError) as caught:
        invocation("ingest", None, payload)
    assert (caught.value.status, caught.value.error_type) == (400, "InvalidRequestContentException")


def test_an_invoke_error_answers_as_the_lambda_service() -> None:
    status, headers, body = InvokeError(404, "ResourceNotFoundException", "Function not found: x").answer()
    assert status == 404
    assert dict(headers) == {b"content-type": b"application/json", b"x-amzn-errortype": b"ResourceNotFoundException"}
    assert orjson.loads(body) == {"Type": "User", "Message": "Function not found: x"}


def _function(run: Any) -> Function:
    return Function("test", lambda event, services, report: run(event, services), "a test function")


def test_run_answers_the_function_result() -> None:
    call = Invocation(_function(lambda event, services: {"echo": event, "services": services}), "RequestResponse", [1])
    status, headers, body = run(call, "the services")  # type: ignore[arg-type]
    assert status == 200
    assert (b"x-amz-executed-version", b"$LATEST") in headers
    assert not any(name == b"x-amz-function-error" for name, _ in headers)
    assert orjson.loads(body) == {"echo": [1], "services": "the services"}


def _raises(event: Any, services: Any) -> Any:
    raise LookupError("no such thing")


@pytest.mark.parametrize(
    ("handler", "error_type"),
    [(_raises, "LookupError"), (lambda e, s: {1j}, "TypeError")],  # a result that is not JSON fails too
)
def test_a_function_that_fails_is_an_unhandled_function_error(handler: Any, error_type: str) -> None:
    status, headers, body = run(Invocation(_function(handler), "RequestResponse", {}), None)  # type: ignore[arg-type]
    assert status == 200  # the Invoke call itself succeeded
    assert (b"x-amz-function-error", b"Unhandled") in headers
    error = orjson.loads(body)
    assert error["errorType"] == error_type
    assert set(error) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert isinstance(error["stackTrace"], list)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/2015-03-31/functions/ingest/invocations", "ingest"),
        ("/2015-03-31/functions/ingest/invocations/", "ingest"),
        ("/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:x/invocations", None),
    ],
)
def test_the_invoke_path(path: str, name: str | None) -> None:
    match = INVOKE_PATH.match(path)
    assert match is not None
    assert match["name"] == (name or path.split("/")[3])


@pytest.mark.parametrize(
    "path",
    ["/2015-03-31/functions//invocations", "/2015-03-31/functions/a/b/invocations", "/functions/ingest/invocations"],
)
def test_other_paths_are_not_the_invoke_api(path: str) -> None:
    assert INVOKE_PATH.match(path) is None


def test_the_region_of_not_found_arns() -> None:
    with pytest.raises(InvokeError, match=f"arn:aws:lambda:{invoke.REGION}:"):
        invocation("nope", None, b"")

"""The Lambda Invoke API of `eventpipe up`, driven by the real AWS CLI (v1) and by boto3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from eventpipe.handlers.functions import LOCAL_FUNCTIONS
from tests.localrun.api_client import batch_when_done, events, wait_for
from tests.localrun.process_probe import curated_ids
from tests.localrun.servers import up

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.localrun.server_harness import Server

AWS = Path(sys.executable).parent / "aws"
SAMPLE = Path(__file__).parents[2] / "events" / "sample.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with up(tmp_path_factory.mktemp("invoke") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Any]:
    lambda_client = boto3.client(
        "lambda",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, read_timeout=60),
    )
    yield lambda_client
    lambda_client.close()


def aws(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The AWS CLI with dummy credentials, and no user configuration that could interfere."""
    env = {
        "PATH": str(AWS.parent),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_PAGER": "",
    }
    return subprocess.run(
        [str(AWS), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def invoke_with_cli(tmp_path: Path, url: str, function: str, payload: Path) -> subprocess.CompletedProcess[str]:
    return aws(
        tmp_path,
        "lambda",
        "invoke",
        "--endpoint-url",
        url,
        "--function-name",
        function,
        "--payload",
        f"file://{payload}",
        "out.json",
    )


def test_the_cli_invokes_ingest_with_the_sample_payload(server: Server, tmp_path: Path) -> None:
    # WHEN the README's command is run against the local runtime
    result = invoke_with_cli(tmp_path, server.url, "ingest", SAMPLE)
    # THEN the CLI reports a successful invocation
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    # AND out.json holds the proxy response of POST /events
    response = orjson.loads((tmp_path / "out.json").read_bytes())
    assert response["statusCode"] == 202
    answer = orjson.loads(response["body"])
    assert answer["received"] == 5
    assert batch_when_done(server.url, answer["batch_id"])["curated"] + answer["rejected"] <= 5


def test_the_cli_reports_an_unknown_function(server: Server, tmp_path: Path) -> None:
    result = invoke_with_cli(tmp_path, server.url, "no_such_function", SAMPLE)
    assert result.returncode != 0
    assert "ResourceNotFoundException" in result.stderr
    assert not (tmp_path / "out.json").exists()


def test_the_cli_reports_a_function_that_raises(server: Server, tmp_path: Path) -> None:
    # GIVEN a payload the processing step cannot work with (no raw_key)
    payload = tmp_path / "bad.json"
    payload.write_bytes(b'{"batch_id": "b-1"}')
    # WHEN it is invoked
    result = invoke_with_cli(tmp_path, server.url, "process_batch", payload)
    # THEN the CLI says the function failed, as Lambda does, and out.json holds the error document
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["FunctionError"] == "Unhandled"
    error = orjson.loads((tmp_path / "out.json").read_bytes())
    assert error["errorType"] == "KeyError"
    assert "raw_key" in error["errorMessage"]


def _payload(event: Any) -> bytes:
    return orjson.dumps(event)


def test_boto3_invoke_returns_the_function_result(client: Any, server: Server) -> None:
    response = client.invoke(FunctionName="ingest", Payload=_payload({"events": events(3)}))
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    answer = orjson.loads(response["Payload"].read())
    assert answer["received"] == 3
    assert batch_when_done(server.url, answer["batch_id"])["curated"] == 3


def test_boto3_sees_a_function_error_as_unhandled(client: Any) -> None:
    response = client.invoke(FunctionName="ingest", Payload=b'{"neither": "http nor s3"}')
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = orjson.loads(response["Payload"].read())
    assert error["errorType"] == "InputError"
    assert {"errorMessage", "errorType", "stackTrace"} <= set(error)


def test_boto3_raises_resource_not_found_for_an_unknown_function(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="no_such_function", Payload=b"{}")


def test_boto3_event_invocation_is_accepted_then_run(client: Any, server: Server) -> None:
    # GIVEN events sent with InvocationType Event (queued in AWS)
    sent = events(2)
    # WHEN invoked
    response = client.invoke(FunctionName="ingest", InvocationType="Event", Payload=_payload({"events": sent}))
    # THEN the answer is 202 with no payload, and the function still runs: the events get curated
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    wanted = {e["event_id"] for e in sent}
    wait_for(lambda: wanted <= set(curated_ids(server.data_dir)), what="events of an Event invocation curated")


def test_boto3_dry_run_is_204_and_runs_nothing(client: Any, server: Server) -> None:
    sent = events(1)
    response = client.invoke(FunctionName="ingest", InvocationType="DryRun", Payload=_payload({"events": sent}))
    assert response["StatusCode"] == 204
    assert sent[0]["event_id"] not in curated_ids(server.data_dir)


def test_boto3_payload_that_is_not_json_is_invalid_request_content(client: Any) -> None:
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="ingest", Payload=b"{not json")


def test_an_unknown_invocation_type_is_invalid_parameter(client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="ingest", InvocationType="Sometime", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_boto3_payload_over_6_mb_is_request_too_large(client: Any) -> None:
    payload = b'{"x": "' + b"a" * (6 * 1024 * 1024) + b'"}'
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="ingest", Payload=payload)


@pytest.mark.parametrize("name", sorted(LOCAL_FUNCTIONS))
def test_every_function_name_resolves(client: Any, name: str) -> None:
    assert client.invoke(FunctionName=name, InvocationType="DryRun", Payload=b"{}")["StatusCode"] == 204


def test_replay_runs_with_an_empty_event(client: Any) -> None:
    response = client.invoke(FunctionName="replay", Payload=b"{}")
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response, response["Payload"].read()
    assert set(orjson.loads(response["Payload"].read())) >= {"batches", "received"}


@pytest.mark.parametrize(
    "name",
    [
        "arn:aws:lambda:us-east-1:123456789012:function:ingest",
        "arn:aws:lambda:eu-west-1:123456789012:function:ingest:$LATEST",
        "123456789012:function:ingest",
        "ingest:$LATEST",
        "ingest:live",
    ],
)
def test_arn_and_qualified_names_resolve(client: Any, server: Server, name: str) -> None:
    response = client.invoke(FunctionName=name, Payload=_payload({"events": events(1)}))
    assert response["StatusCode"] == 200
    answer = orjson.loads(response["Payload"].read())
    assert batch_when_done(server.url, answer["batch_id"])["curated"] == 1


@pytest.mark.parametrize(
    "name",
    [
        "arn:aws:lambda:us-east-1:123456789012:function:nope",
        "arn:aws:lambda:us-east-1:12345:function:ingest",  # an account id has 12 digits
        "ingest:a:b",
        "a" * 65,
    ],
)
def test_names_that_are_no_function_are_not_found(client: Any, name: str) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=name, InvocationType="DryRun", Payload=b"{}")

"""What keeps the Lambda cold start short: botocore's models read by orjson, clients and X-Ray loaded on demand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError

from eventpipe.adapters.aws.botocore_loader import OrjsonLoader, fast_session
from eventpipe.awsrun.tracing import SampledTracer

if TYPE_CHECKING:
    from collections.abc import Callable

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("service", ["dynamodb", "s3", "stepfunctions"])
@pytest.mark.parametrize("type_name", ["service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2"])
def test_orjson_loader_reads_the_same_models_as_botocore(service: str, type_name: str) -> None:
    # GIVEN botocore's own loader and ours
    theirs = botocore.session.get_session().get_component("data_loader")
    # WHEN each loads a model the functions' clients use
    # THEN the data is the same (or the error, e.g. Step Functions has no waiters)
    assert outcome(OrjsonLoader().load_service_model, service, type_name) == outcome(
        theirs.load_service_model, service, type_name
    )


def outcome(load: Callable[[str, str], Any], service: str, type_name: str) -> Any:
    try:
        return load(service, type_name)
    except UnknownServiceError as exc:
        return type(exc)


@pytest.mark.parametrize("name", ["endpoints", "partitions", "_retry", "sdk-default-configuration"])
def test_orjson_loader_reads_the_same_data_files(name: str) -> None:
    theirs = botocore.session.get_session().get_component("data_loader")
    assert OrjsonLoader().load_data(name) == theirs.load_data(name)


def test_unknown_service_is_botocores_error() -> None:
    # GIVEN a service name botocore does not know
    # WHEN its model is loaded THEN botocore's UnknownServiceError says so, as with its own loader
    with pytest.raises(UnknownServiceError):
        OrjsonLoader().load_service_model("no-such-service", "service-2")


def test_aws_data_path_still_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a data file in a folder named by AWS_DATA_PATH (botocore's documented override)
    (tmp_path / "sdk-default-configuration.json").write_text(json.dumps({"version": 99, "base": {}, "modes": {}}))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    # WHEN the loader reads that file THEN the override wins
    assert OrjsonLoader().load_data("sdk-default-configuration")["version"] == 99


def test_a_fast_session_builds_working_clients(aws: None) -> None:
    # GIVEN a client from the fast session, under moto
    client = fast_session().create_client("s3", region_name="eu-west-1")
    # WHEN it is used THEN it works as any botocore client
    client.create_bucket(Bucket="cold-start-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["cold-start-bucket"]


def test_credentials_from_the_environment_are_the_default_chains(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a key pair in the environment, as Lambda gives every function
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    # WHEN the fast session and botocore's own resolve credentials
    ours, theirs = fast_session().get_credentials(), botocore.session.get_session().get_credentials()
    # THEN they are the same, found by the environment provider alone
    assert ours is not None
    assert theirs is not None
    assert (ours.access_key, ours.secret_key, ours.token, ours.method) == (
        theirs.access_key,
        theirs.secret_key,
        theirs.token,
        theirs.method,
    )
    assert len(fast_session().get_component("credential_provider").providers) == 1


def test_without_them_the_session_keeps_botocores_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no key pair in the environment, but a shared credentials file
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    credentials_file = tmp_path / "credentials"
    credentials_file.write_text("[default]\naws_access_key_id = file-key\naws_secret_access_key = file-secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    # WHEN the fast session resolves credentials THEN botocore's whole chain finds the file's
    credentials = fast_session().get_credentials()
    assert credentials is not None
    assert (credentials.access_key, credentials.method) == ("file-key", "shared-credentials-file")


def lambda_init(code: str, *, before: str = "pass", **extra: str) -> Any:
    """Run `code` after `import lambda_pipeline` (and `before` it) in a fresh interpreter with a Lambda
    environment; its JSON output."""
    return json.loads(lambda_output(code, before=before, **extra).strip().splitlines()[-1])


def lambda_output(code: str, *, before: str = "pass", **extra: str) -> str:
    """Run `code` after `import lambda_pipeline` (and `before` it) in a fresh interpreter with a Lambda
    environment; all it printed (the functions' log lines go to standard output, as on Lambda)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(SRC),
        "AWS_LAMBDA_FUNCTION_NAME": "eventpipe-test",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "EVENTPIPE_BUCKET": "b",
        "EVENTPIPE_CURATED_TABLE": "c",
        "EVENTPIPE_STATE_TABLE": "s",
        "EVENTPIPE_INSIGHTS_TABLE": "i",
        "EVENTPIPE_STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:eventpipe",
        **extra,
    }
    script = f"import json, sys; {before}; import lambda_pipeline; runtime = lambda_pipeline.runtime; {code}"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def test_the_credentials_found_at_cold_start_are_not_logged() -> None:
    # GIVEN a fresh container, its key pair in its environment as Lambda gives it
    # WHEN its first client is built (which finds the credentials), then botocore warns of something
    output = lambda_output(
        "runtime._dynamodb.meta; import logging;"
        " logging.getLogger('botocore.credentials').warning('credentials expire soon')"
    )
    # THEN botocore's INFO line about where it found them is not in the function's logs, its warning is
    assert "Found credentials" not in output
    warning = json.loads(next(line for line in output.splitlines() if "credentials expire soon" in line))
    assert (warning["level"], warning["name"]) == ("WARNING", "botocore.credentials")


def test_init_builds_no_client_and_imports_no_xray_sdk() -> None:
    # GIVEN a fresh Lambda container
    # WHEN lambda_pipeline is imported (the init phase)
    loaded = lambda_init(
        "print(json.dumps({'xray': 'aws_xray_sdk' in sys.modules, 'boto3': 'boto3' in sys.modules,"
        " 'clients': [n for n in ('_dynamodb', 'bucket', 'curated') if n in vars(runtime)]}))"
    )
    # THEN neither the X-Ray SDK, boto3 (only Powertools Parameters needs it, in ProcessBatch) nor any client was loaded
    assert loaded == {"xray": False, "boto3": False, "clients": []}


def test_the_init_runs_without_the_collector_and_freezes_what_it_built() -> None:
    # GIVEN a fresh Lambda container WHEN lambda_pipeline is imported
    state = lambda_init("import gc; print(json.dumps([gc.isenabled(), gc.get_freeze_count() > 10000]))")
    # THEN the collector runs again for the invocations, and the init's objects are out of its passes
    assert state == [True, True]


def test_a_workflow_step_builds_only_its_clients() -> None:
    # GIVEN a container whose first call reads the bucket and the curated table
    # WHEN those are touched
    services = lambda_init(
        "runtime.bucket; runtime.curated;"
        " print(json.dumps([runtime.bucket._client.meta.service_model.service_name,"
        " runtime.curated._client.meta.service_model.service_name, 'ingestor' in vars(runtime)]))"
    )
    # THEN an S3 and a DynamoDB client exist, and the ingestor (with its Step Functions client) was never built
    assert services == ["s3", "dynamodb", False]


INGEST_PATH = ("eventpipe.core.ingest", "eventpipe.handlers.ingest", "eventpipe.handlers.http_api")


def test_each_function_loads_only_its_own_path() -> None:
    # GIVEN a workflow step's first call (bucket, curated store), then ingest's (the ingestor and its handler)
    step, both = lambda_init(
        "runtime.bucket; runtime.curated; step = sorted(sys.modules);"
        " runtime.ingestor; import eventpipe.handlers.ingest;"
        " print(json.dumps([step, sorted(sys.modules)]))"
    )
    # THEN the workflow step loaded none of the ingest path, nor the enrichment chain (its first batch does)
    assert not set(step) & {*INGEST_PATH, "eventpipe.core.enrich.chain"}
    assert set(INGEST_PATH) <= set(both)


def handler(event: Any, context: Any) -> Any:
    return {"echo": event}


def test_unsampled_invocations_never_load_the_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an invocation X-Ray does not sample
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0")
    tracer = SampledTracer(service="eventpipe", patch_modules=("botocore",))
    traced: Callable[[Any, Any], Any] = tracer.capture_lambda_handler(handler)
    # WHEN the handler runs THEN it answers and no Tracer was built
    assert traced({"a": 1}, None) == {"echo": {"a": 1}}
    assert tracer._tracer is None


def test_a_sampled_invocation_is_traced_by_powertools(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a sampled invocation (Powertools' tracing itself disabled, as outside AWS)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    tracer = SampledTracer(service="eventpipe", patch_modules=("botocore",))
    traced: Callable[[Any, Any], Any] = tracer.capture_lambda_handler(handler)
    # WHEN the handler runs THEN it answers through the Powertools Tracer, built once
    assert traced({"a": 1}, None) == {"echo": {"a": 1}}
    built = tracer._tracer
    assert built is not None
    assert traced({"a": 2}, None) == {"echo": {"a": 2}}
    assert tracer._tracer is built


def test_process_batch_loads_no_pyarrow_the_lake_functions_do() -> None:
    # GIVEN ProcessBatch's steps built (write_lake writes the lake now, from the curated table's stream)
    # WHEN a container builds them, and another the lake writer
    step = lambda_init("print(json.dumps([getattr(runtime.steps, 'lake', None) is None, 'pyarrow' in sys.modules]))")
    lake = lambda_init(
        "from eventpipe.adapters.aws.lake_stream import LakeStreamWriter; import eventpipe.lake.columns;"
        " print(json.dumps(['pyarrow' in sys.modules, runtime.lake_writer is not None]))",
        EVENTPIPE_ANALYTICS_BUCKET="a",
    )
    # THEN ProcessBatch has no lake to write, and imported no pyarrow (0.2 s and its memory, out of every batch)
    assert step == [True, False]
    assert lake == [True, True]

"""botocore's models pre-parsed at package time: the same clients, faster; any doubt and the files are read."""

from __future__ import annotations

import marshal
import re
import zlib
from pathlib import Path
from typing import Any

import botocore
import pytest

from eventpipe.adapters.aws.botocore_loader import OrjsonLoader, fast_session
from eventpipe.adapters.aws.clients import make_client
from eventpipe.adapters.aws.model_cache import (
    MAX_CACHE_BYTES,
    MODEL_CACHE_NAME,
    SERVICES,
    PreparsedModels,
    _without_docs,
    build_model_cache,
    main,
)
from eventpipe.adapters.aws.regex_cache import REGEX_CACHE_NAME
from tests.aws.test_cold_start import lambda_init

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("task-root")
    main([str(folder)])
    return folder / MODEL_CACHE_NAME


@pytest.fixture
def models(cache_file: Path) -> PreparsedModels:
    loaded = PreparsedModels.load(cache_file)
    assert loaded is not None
    return loaded


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1", "cn-north-1", "us-gov-west-1"])
def test_clients_from_the_cache_equal_clients_from_the_files(
    models: PreparsedModels, service: str, region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # GIVEN a client built from botocore's files and one from the pre-parsed cache
    theirs = fast_session().create_client(service, region_name=region)
    ours = fast_session(models).create_client(service, region_name=region)
    # THEN they have the same model (without its documentation strings), endpoint and signing
    assert ours.meta.service_model._service_description == _without_docs(theirs.meta.service_model._service_description)
    assert not _has_docs(ours.meta.service_model._service_description)
    assert (ours.meta.endpoint_url, ours.meta.partition) == (theirs.meta.endpoint_url, theirs.meta.partition)
    assert ours._request_signer._signing_name == theirs._request_signer._signing_name
    assert ours._request_signer.region_name == theirs._request_signer.region_name


def test_cached_clients_work(models: PreparsedModels, aws: None) -> None:
    # GIVEN a client of each service built from the cache, under moto
    session = fast_session(models)
    s3, dynamodb, sqs, ssm, sfn = (
        session.create_client(service, region_name="eu-west-1")
        for service in ("s3", "dynamodb", "sqs", "ssm", "stepfunctions")
    )
    # WHEN each is used, a paginator included (its model comes from the cache too)
    s3.create_bucket(Bucket="cached-models", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="cached-models", Key="a", Body=b"x")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="cached-models")
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "k"}})
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="m")
    ssm.put_parameter(Name="/k", Value="v", Type="SecureString")
    # THEN they work as any botocore client
    assert [item["Key"] for page in pages for item in page["Contents"]] == ["a"]
    assert dynamodb.get_item(TableName="t", Key={"pk": {"S": "k"}})["Item"] == {"pk": {"S": "k"}}
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=queue)["Messages"]] == ["m"]
    assert ssm.get_parameter(Name="/k", WithDecryption=True)["Parameter"]["Value"] == "v"
    assert sfn.list_state_machines()["stateMachines"] == []


def test_the_cut_endpoints_keep_the_services_by_their_endpoint_prefix(models: PreparsedModels) -> None:
    endpoints = models.find(str(Path(OrjsonLoader.BUILTIN_DATA_PATH) / "endpoints"))
    assert endpoints is not None
    aws = next(p for p in endpoints["partitions"] if p["partition"] == "aws")
    # Step Functions is "states" in endpoints.json; STS is there for botocore's credential providers
    assert set(aws["services"]) == {"dynamodb", "firehose", "lambda", "s3", "sqs", "ssm", "states", "sts"}


def test_another_botocore_version_uses_only_the_unchanged_files(cache_file: Path, tmp_path: Path) -> None:
    # GIVEN a cache built by another botocore, where S3's model file differs from the one on disk
    document = marshal.loads(cache_file.read_bytes())
    document["botocore"] = "0.0.0"
    s3_model = next(name for name in document["files"] if name.startswith("s3/") and "/service-2.json" in name)
    size, crc, blob = document["files"][s3_model]
    document["files"][s3_model] = (size, crc ^ 1, blob)
    (tmp_path / MODEL_CACHE_NAME).write_bytes(marshal.dumps(document))
    models = PreparsedModels.load(tmp_path / MODEL_CACHE_NAME)
    assert models is not None
    loader = OrjsonLoader(models)
    # WHEN the models are loaded
    # THEN S3's comes from its file (with its documentation), DynamoDB's from the cache (same bytes on disk)
    assert _has_docs(loader.load_service_model("s3", "service-2"))
    assert not _has_docs(loader.load_service_model("dynamodb", "service-2"))
    assert loader.load_data("partitions") == OrjsonLoader().load_data("partitions")


def _has_docs(model: dict[str, Any]) -> bool:
    return any(operation.get("documentation") for operation in model["operations"].values())


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not marshal at all",
        marshal.dumps({"format": 99, "marshal": marshal.version, "botocore": botocore.__version__, "files": {}}),
        marshal.dumps({"format": 1, "marshal": marshal.version, "botocore": botocore.__version__, "files": {"a": 1}}),
        marshal.dumps({"format": 1, "marshal": -1, "botocore": botocore.__version__, "files": {}}),
        marshal.dumps([1, 2, 3]),
    ],
    ids=["empty", "garbage", "format", "entry", "marshal-version", "not-a-dict"],
)
def test_a_damaged_cache_is_ignored(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / MODEL_CACHE_NAME
    path.write_bytes(content)
    assert PreparsedModels.load(path) is None


def test_a_truncated_or_oversized_cache_is_ignored(cache_file: Path, tmp_path: Path) -> None:
    path = tmp_path / MODEL_CACHE_NAME
    path.write_bytes(cache_file.read_bytes()[: cache_file.stat().st_size // 2])
    assert PreparsedModels.load(path) is None
    path.write_bytes(b"\0" * (MAX_CACHE_BYTES + 1))
    assert PreparsedModels.load(path) is None
    assert PreparsedModels.load(tmp_path / "missing") is None


def test_aws_data_path_still_overrides_the_cache(
    models: PreparsedModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sdk-default-configuration.json").write_text('{"version": 99, "base": {}, "modes": {}}')
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    assert OrjsonLoader(models).load_data("sdk-default-configuration")["version"] == 99


def test_the_cache_is_the_same_data_as_built() -> None:
    # Each entry's fingerprint is its source file's: the cache never serves data for other bytes
    document = marshal.loads(build_model_cache())
    for name, (size, crc, _) in document["files"].items():
        content = (Path(OrjsonLoader.BUILTIN_DATA_PATH) / name).read_bytes()
        assert (size, crc) == (len(content), zlib.crc32(content)), name


def test_make_client_refuses_a_service_the_cache_does_not_hold() -> None:
    with pytest.raises(ValueError, match="SERVICES"):
        make_client("kinesis")


def test_every_client_eventpipe_builds_is_in_the_cache() -> None:
    named = {
        match
        for path in SRC.rglob("*.py")
        for match in re.findall(r"make_client\(\s*\"([a-z0-9-]+)\"", path.read_text(encoding="utf-8"))
    }
    assert named
    assert named <= set(SERVICES)


def test_a_lambda_package_with_the_cache_uses_it(cache_file: Path) -> None:
    # GIVEN a function whose package (LAMBDA_TASK_ROOT) holds the cache
    # WHEN its first call builds the S3 client
    loaded = lambda_init(
        "m = runtime.bucket._client.meta.service_model._service_description;"
        " print(json.dumps(any(o.get('documentation') for o in m['operations'].values())))",
        LAMBDA_TASK_ROOT=str(cache_file.parent),
    )
    # THEN its model came from the cache (no documentation strings)
    assert loaded is False


def test_the_command_writes_into_each_built_function(tmp_path: Path) -> None:
    # GIVEN `sam build`'s output: two function folders and the template
    for function in ("IngestFunction", "ProcessBatchFunction"):
        (tmp_path / function).mkdir()
        (tmp_path / function / "lambda_pipeline.py").write_text("")
    (tmp_path / "template.yaml").write_text("")
    # WHEN the command runs on it
    main(["--sam-build", str(tmp_path)])
    # THEN each function folder holds a cache its functions can load, and the compiled regular
    # expressions (regex_cache.py), and nothing else was written
    for function in ("IngestFunction", "ProcessBatchFunction"):
        assert PreparsedModels.load(tmp_path / function / MODEL_CACHE_NAME) is not None
    assert sorted(p.name for p in tmp_path.rglob("*.marshal")) == sorted([MODEL_CACHE_NAME, REGEX_CACHE_NAME] * 2)


def test_the_command_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--sam-build", str(tmp_path)])

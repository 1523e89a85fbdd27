"""The raw bucket on S3 (`S3RawBucket`) and the workflow starter on Step Functions (`StepFunctionsStarter`),
on moto: round trips, missing objects and versions, pagination, and vendor errors translated to ours."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from eventpipe.adapters.aws.s3 import S3RawBucket
from eventpipe.adapters.aws.stepfunctions import StepFunctionsStarter
from eventpipe.core.errors import ObjectNotFoundError, StorageError
from tests.aws.conftest import BUCKET, REGION

if TYPE_CHECKING:
    from collections.abc import Callable

ACCOUNT = DEFAULT_ACCOUNT_ID
PASS_MACHINE = '{"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}'
# A version id of the shape S3 gives, for an object version that never existed.
UNKNOWN_VERSION = "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"


@pytest.fixture
def bucket(s3: Any) -> S3RawBucket:
    return S3RawBucket(BUCKET, s3)


# --- S3RawBucket ---------------------------------------------------------------------------------


def test_put_then_get_and_open_give_back_the_same_bytes(bucket: S3RawBucket) -> None:
    # GIVEN bytes that are not text, under a key with a space and non-ASCII characters
    data = bytes(range(256)) * 3
    key = "raw/batch é 1.ndjson"
    # WHEN they are put
    bucket.put(key, data, durable=True)
    # THEN get and open both give them back unchanged
    assert bucket.get(key) == data
    with bucket.open(key) as stream:
        assert stream.read() == data


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda b: b.get("raw/missing"), id="get"),
        pytest.param(lambda b: b.open("raw/missing"), id="open"),
        pytest.param(lambda b: b.open("raw/missing", UNKNOWN_VERSION), id="open-missing-key-and-version"),
    ],
)
def test_reading_a_missing_key_is_object_not_found(bucket: S3RawBucket, read: Callable[[S3RawBucket], Any]) -> None:
    # GIVEN a bucket without the key, WHEN it is read, THEN ObjectNotFoundError names it (no botocore exception)
    with pytest.raises(ObjectNotFoundError, match="raw/missing"):
        read(bucket)


def test_a_missing_version_of_an_existing_key_is_object_not_found(bucket: S3RawBucket, s3: Any) -> None:
    # GIVEN a versioned bucket with two versions of a key, the first of which is then deleted
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=BUCKET, Key="incoming/f.ndjson", Body=b"first")["VersionId"]
    second = s3.put_object(Bucket=BUCKET, Key="incoming/f.ndjson", Body=b"second")["VersionId"]
    # WHEN each version is opened THEN each has its own bytes
    with bucket.open("incoming/f.ndjson", first) as stream:
        assert stream.read() == b"first"
    with bucket.open("incoming/f.ndjson", second) as stream:
        assert stream.read() == b"second"
    # AND once the first version is deleted, or for a version that never was, the answer is ObjectNotFoundError
    s3.delete_object(Bucket=BUCKET, Key="incoming/f.ndjson", VersionId=first)
    with pytest.raises(ObjectNotFoundError):
        bucket.open("incoming/f.ndjson", first)
    with pytest.raises(ObjectNotFoundError):
        bucket.open("incoming/f.ndjson", UNKNOWN_VERSION)
    # AND the key itself is still there
    assert bucket.get("incoming/f.ndjson") == b"second"


def test_versions_lists_each_version_and_marker_and_one_version_can_be_deleted(bucket: S3RawBucket, s3: Any) -> None:
    # GIVEN a versioned bucket: a raw batch put twice, then deleted (a delete marker), and an object beside it
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    bucket.put("raw/b.ndjson", b"first")
    bucket.put("raw/b.ndjson", b"second")
    bucket.delete("raw/b.ndjson")
    bucket.put("staged/s.ndjson", b"other")
    # WHEN the versions under raw/ are listed
    versions = list(bucket.versions("raw/"))
    # THEN the two versions and the marker come back, the marker the latest, and nothing under staged/
    assert sorted((v.key, v.latest, v.marker) for v in versions) == [
        ("raw/b.ndjson", False, False),
        ("raw/b.ndjson", False, False),
        ("raw/b.ndjson", True, True),
    ]
    # AND a noncurrent version reads back as put (gzip-compressed under raw/, like the current one)
    old = {bucket.get(v.key, v.version_id): v.version_id for v in versions if not v.marker}
    assert set(old) == {b"first", b"second"}
    # AND deleting one version by its id removes that version only
    bucket.delete("raw/b.ndjson", old[b"first"])
    left = [(v.version_id, v.marker) for v in bucket.versions("raw/")]
    assert sorted(left) == sorted([(old[b"second"], False), *((v.version_id, True) for v in versions if v.marker)])
    with pytest.raises(ObjectNotFoundError):
        bucket.get("raw/b.ndjson", old[b"first"])


def test_keys_pages_through_more_than_a_thousand_objects(bucket: S3RawBucket, s3: Any) -> None:
    # GIVEN 1,001 objects under incoming/ (one list page holds 1,000) and others beside them
    # (put straight into moto's backend: 1,001 PutObject calls through botocore take seconds)
    backend = s3_backends[ACCOUNT]["aws"]
    wanted = {f"incoming/{n:05d}.ndjson" for n in range(1001)}
    for key in [*wanted, "raw/other.ndjson", "incoming-not/x", "rejected/incoming/y"]:
        backend.put_object(BUCKET, key, b"")
    pages: list[dict[str, Any]] = []
    s3.meta.events.register("before-call.s3.ListObjectsV2", lambda params, **_: pages.append(params))
    # WHEN the keys under incoming/ are listed
    keys = list(bucket.keys("incoming/"))
    # THEN all of them come back, once each, none other, over two pages
    assert len(keys) == 1001
    assert set(keys) == wanted
    assert len(pages) == 2


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda b: b.put("raw/k", b"x"), id="put"),
        pytest.param(lambda b: b.get("raw/k"), id="get"),
        pytest.param(lambda b: b.open("raw/k"), id="open"),
        pytest.param(lambda b: b.delete("raw/k"), id="delete"),
        pytest.param(lambda b: list(b.keys("raw/")), id="keys"),
        pytest.param(lambda b: list(b.versions("raw/")), id="versions"),
    ],
)
def test_a_bucket_that_does_not_exist_is_a_storage_error(s3: Any, operation: Callable[[S3RawBucket], Any]) -> None:
    # GIVEN an adapter on a bucket that does not exist
    bucket = S3RawBucket("eventpipe-no-such-bucket", s3)
    # WHEN any operation runs THEN it raises StorageError with the service's code, never a botocore exception
    with pytest.raises(StorageError, match="NoSuchBucket") as caught:
        operation(bucket)
    assert not isinstance(caught.value, ObjectNotFoundError)  # not "gone for good": the configuration is wrong
    assert isinstance(caught.value.__cause__, ClientError)


class _FailingBody:
    """A StreamingBody whose connection breaks while it is read."""

    def read(self, size: int = -1) -> bytes:
        raise ReadTimeoutError(endpoint_url="https://s3.example")

    def close(self) -> None:
        pass


class _BrokenStreamClient:
    """An S3 client whose GetObject answers, then the body read times out."""

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": _FailingBody()}


def test_a_read_that_breaks_in_get_is_a_storage_error() -> None:
    # GIVEN an object whose body read times out
    bucket = S3RawBucket(BUCKET, _BrokenStreamClient())  # type: ignore[arg-type]
    # WHEN it is read whole THEN the botocore error is translated
    with pytest.raises(StorageError, match="ReadTimeoutError") as caught:
        bucket.get("raw/k")
    assert isinstance(caught.value.__cause__, BotoCoreError)


def test_a_read_that_breaks_in_an_opened_stream_is_a_storage_error() -> None:
    # GIVEN an object whose body read times out
    bucket = S3RawBucket(BUCKET, _BrokenStreamClient())  # type: ignore[arg-type]
    stream = bucket.open("incoming/k")  # a dropped file, streamed (a raw/ object's first bytes are read at open)
    # WHEN the stream is read THEN the caller sees StorageError, not botocore's exception
    with pytest.raises(StorageError):
        stream.read()


# --- StepFunctionsStarter ------------------------------------------------------------------------


@pytest.fixture
def sfn(aws: None) -> Any:
    return boto3.client("stepfunctions", region_name=REGION)


@pytest.fixture
def machine(sfn: Any) -> str:
    arn: str = sfn.create_state_machine(
        name="eventpipe-test", definition=PASS_MACHINE, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eventpipe-workflow"
    )["stateMachineArn"]
    return arn


def executions(sfn: Any, machine: str) -> dict[str, dict[str, Any]]:
    """Each execution's name -> its description (with the input it was given)."""
    listed = sfn.list_executions(stateMachineArn=machine)["executions"]
    return {e["name"]: sfn.describe_execution(executionArn=e["executionArn"]) for e in listed}


def test_start_names_the_execution_after_the_batch_and_passes_only_a_reference(sfn: Any, machine: str) -> None:
    # GIVEN a starter on the state machine (with its own client, as the Lambda builds it)
    starter = StepFunctionsStarter(machine)
    # WHEN a batch is started
    starter.start("h0195f0a1b2c3d4e5f6a7b8c9d0", "raw/h0195f0a1b2c3d4e5f6a7b8c9d0.ndjson")
    # THEN one execution runs, named after the batch, with the claim check as its whole input
    started = executions(sfn, machine)
    assert list(started) == ["h0195f0a1b2c3d4e5f6a7b8c9d0"]
    assert orjson.loads(started["h0195f0a1b2c3d4e5f6a7b8c9d0"]["input"]) == {
        "batch_id": "h0195f0a1b2c3d4e5f6a7b8c9d0",
        "raw_key": "raw/h0195f0a1b2c3d4e5f6a7b8c9d0.ndjson",
    }


def test_a_second_start_of_a_running_batch_is_harmless(sfn: Any, machine: str) -> None:
    # GIVEN a batch whose execution is running
    starter = StepFunctionsStarter(machine, sfn)
    starter.start("b1", "raw/b1.ndjson")
    # WHEN it is started again (a repeated ingest, a recovery sweep)
    starter.start("b1", "raw/b1.ndjson")
    # THEN nothing is raised and the one execution goes on alone
    assert list(executions(sfn, machine)) == ["b1"]


def test_a_start_of_a_batch_whose_execution_closed_runs_it_again(sfn: Any, machine: str) -> None:
    # GIVEN a batch whose execution closed without finishing it (here: aborted)
    starter = StepFunctionsStarter(machine, sfn)
    starter.start("b1", "raw/b1.ndjson")
    sfn.stop_execution(executionArn=executions(sfn, machine)["b1"]["executionArn"])
    # WHEN it is started again: Step Functions answers ExecutionAlreadyExists for the closed name
    starter.start("b1", "raw/b1.ndjson")
    # THEN nothing is raised, and a new execution named after the batch runs it (every step may run twice)
    started = executions(sfn, machine)
    assert len(started) == 2
    (again,) = set(started) - {"b1"}
    assert again.startswith("b1-retry-")
    assert orjson.loads(started[again]["input"]) == {"batch_id": "b1", "raw_key": "raw/b1.ndjson"}


def test_a_retry_starts_a_new_execution_named_after_the_batch(sfn: Any, machine: str) -> None:
    # GIVEN a batch whose first execution ended (failed)
    starter = StepFunctionsStarter(machine, sfn)
    starter.start("b1", "raw/b1.ndjson")
    sfn.stop_execution(executionArn=executions(sfn, machine)["b1"]["executionArn"])
    # WHEN it is started again as a retry
    starter.start("b1", "raw/b1.ndjson", retry=True)
    # THEN a second execution runs under a new name that starts with the batch id, with the same input
    started = executions(sfn, machine)
    assert len(started) == 2
    (retry_name,) = set(started) - {"b1"}
    assert retry_name.startswith("b1-retry-")
    assert len(retry_name) <= 80  # Step Functions' limit on names
    assert orjson.loads(started[retry_name]["input"]) == {"batch_id": "b1", "raw_key": "raw/b1.ndjson"}


def test_an_unknown_state_machine_is_a_storage_error(sfn: Any, machine: str) -> None:
    # GIVEN a starter on a state machine that does not exist
    starter = StepFunctionsStarter(machine.replace("eventpipe-test", "eventpipe-gone"), sfn)
    # WHEN a batch is started THEN StorageError names the batch and the service's code
    with pytest.raises(StorageError, match=r"batch b1.*StateMachineDoesNotExist") as caught:
        starter.start("b1", "raw/b1.ndjson")
    assert isinstance(caught.value.__cause__, ClientError)


def test_raw_batches_are_stored_gzip_compressed_and_read_back_plain(bucket: S3RawBucket, s3: Any) -> None:
    # GIVEN a raw batch put, and a plain one written before raw batches were compressed
    data = b'{"v": 1}\n' + b'{"event_id": "e", "event_type": "page_view"}\n' * 200
    bucket.put("raw/new.ndjson", data)
    s3.put_object(Bucket=BUCKET, Key="raw/old.ndjson", Body=data)
    # THEN the new one is stored gzip-compressed, several times smaller
    stored = s3.get_object(Bucket=BUCKET, Key="raw/new.ndjson")
    assert stored["ContentEncoding"] == "gzip"
    assert len(stored["Body"].read()) * 5 < len(data)
    # AND both read back as the bytes put, by get and by open; other prefixes are stored as they are
    for key in ("raw/new.ndjson", "raw/old.ndjson"):
        assert bucket.get(key) == data
        with bucket.open(key) as stream:
            assert stream.read() == data
    bucket.put("insights/x.json", data)
    assert s3.get_object(Bucket=BUCKET, Key="insights/x.json")["Body"].read() == data

"""A file too large for one ingest invocation is read in byte ranges, one invocation each, under moto.

The largest file these tests drop is 24 MiB of NDJSON (about 40,000 events) in ranges of 4 MiB. Each
range is an asynchronous invocation of ingest itself, recorded here (`tests/aws/async_invocations.py`)
and run as Lambda would run it.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from eventpipe.adapters.aws.s3 import S3RawBucket
from eventpipe.core.rawbatch import RawBatch
from eventpipe.core.readers import GZIP_MAGIC
from tests.aws.async_invocations import Invocations
from tests.aws.conftest import BUCKET
from tests.aws.pipeline_harness import Pipeline, count_clients, load_pipeline
from tests.aws.scans import curated_count
from tests.conftest import make_event

MIB = 1024 * 1024
RANGE_BYTES = 4 * MIB
BIG_FILE_BYTES = 24 * MIB


INGEST = "eventpipe-ingest"


def ranged_pipeline(monkeypatch: pytest.MonkeyPatch, range_bytes: int) -> tuple[Pipeline, Invocations]:
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_RANGE_FUNCTION=INGEST, EVENTPIPE_FILE_RANGE_BYTES=str(range_bytes))
    invocations = Invocations()
    splitter = pipeline.module.runtime.file_splitter
    assert splitter is not None
    invocations.watch(splitter.ranges)
    return pipeline, invocations


@pytest.fixture
def ranged(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Pipeline, Invocations]:
    return ranged_pipeline(monkeypatch, RANGE_BYTES)


@pytest.fixture
def pipeline(ranged: tuple[Pipeline, Invocations]) -> Pipeline:
    return ranged[0]


@pytest.fixture
def invocations(ranged: tuple[Pipeline, Invocations]) -> Invocations:
    return ranged[1]


def ndjson(size: int) -> tuple[bytes, list[str]]:
    """NDJSON of at least `size` bytes, with blank lines and one malformed line; its event ids."""
    lines, ids, total = [], [], 0
    template = make_event("page_view")
    while total < size:
        event = {**template, "event_id": f"00000000-0000-4000-8000-{len(ids):012d}"}
        line = orjson.dumps(event) + b"\n"
        if len(ids) % 997 == 0:
            line += b"\n"  # a blank line
        lines.append(line)
        ids.append(event["event_id"])
        total += len(line)
    lines.insert(len(lines) // 2, b"{not json\n")
    return b"".join(lines), ids


def drop_event(key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "eTag": "e1"}},
            }
        ]
    }


def stored_event_ids(s3: Any) -> list[str]:
    ids = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="raw/"):
        for item in page.get("Contents", []):
            raw = RawBatch.decode(S3RawBucket(BUCKET, s3).get(item["Key"]))  # stored gzip-compressed
            ids += [orjson.loads(event)["event_id"] for event in raw.events if event != b"{not json"]
    return ids


def test_a_large_file_is_ingested_in_ranges_each_event_once(
    pipeline: Pipeline, s3: Any, invocations: Invocations
) -> None:
    # GIVEN a 24 MiB NDJSON file dropped in incoming/
    data, ids = ndjson(BIG_FILE_BYTES)
    s3.put_object(Bucket=BUCKET, Key="incoming/big.ndjson", Body=data)
    # WHEN its object-created event reaches ingest
    answer = pipeline.invoke("ingest", drop_event("incoming/big.ndjson"))
    # THEN ingest reads none of it and hands its byte ranges on instead, one invocation of itself each
    (outcome,) = answer["objects"]
    ranges = -(-len(data) // RANGE_BYTES)
    assert ranges == 7  # 24 MiB and a little more
    assert (outcome["status"], outcome["ranges"], outcome["received"]) == ("split", ranges, 0)
    messages = invocations.events(INGEST)
    assert len(messages) == ranges
    # WHEN each range is an invocation of its own
    received = 0
    for message in messages:
        (part,) = pipeline.invoke("ingest", message)["ranges"]
        assert part["status"] == "ingested"
        received += part["received"]
    # THEN every event is in exactly one raw batch, and the malformed line is refused once
    assert received == len(ids) + 1
    stored = stored_event_ids(s3)
    assert sorted(stored) == sorted(ids)
    # AND a range run again (Lambda's retry) finds its batches: nothing new is stored or started
    batches_before = {
        execution["name"]
        for execution in pipeline.sfn.list_executions(stateMachineArn=pipeline.state_machine_arn)["executions"]
    }
    again = pipeline.invoke("ingest", messages[2])["ranges"][0]
    assert again["status"] == "ingested"
    assert len(stored_event_ids(s3)) == len(ids)
    batches_after = {
        execution["name"]
        for execution in pipeline.sfn.list_executions(stateMachineArn=pipeline.state_machine_arn)["executions"]
    }
    assert batches_after == batches_before


def test_the_workflows_of_a_range_curate_its_events(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline, invocations = ranged_pipeline(monkeypatch, MIB)
    data, ids = ndjson(int(1.5 * MIB))
    s3.put_object(Bucket=BUCKET, Key="incoming/mid.ndjson", Body=data)
    assert pipeline.invoke("ingest", drop_event("incoming/mid.ndjson"))["objects"][0]["ranges"] == 2
    for message in invocations.events(INGEST):
        pipeline.invoke("ingest", message)
    pipeline.drain()
    assert curated_count(dynamodb) == len(ids)


@pytest.mark.parametrize(
    ("name", "body"),
    [("small.ndjson", b'{"event_id": "x"}\n'), ("big.ndjson.gz", GZIP_MAGIC + b"\x00" * (RANGE_BYTES + 10))],
)
def test_small_files_and_gzip_are_read_whole(
    pipeline: Pipeline, s3: Any, invocations: Invocations, name: str, body: bytes
) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"incoming/{name}", Body=body)
    (outcome,) = pipeline.invoke("ingest", drop_event(f"incoming/{name}"))["objects"]
    assert outcome["status"] in ("ingested", "refused")  # a broken gzip is refused, as before
    assert "ranges" not in outcome
    assert invocations.sent == []


def test_a_dropped_file_is_read_with_the_one_s3_client_of_the_container(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a fresh container that splits large files, every client it builds counted
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_RANGE_FUNCTION=INGEST, EVENTPIPE_FILE_RANGE_BYTES=str(RANGE_BYTES))
    built = count_clients(pipeline, monkeypatch)
    # WHEN its first invocation is a small dropped file (its size asked, then the file read)
    s3.put_object(Bucket=BUCKET, Key="incoming/small.ndjson", Body=ndjson(10_000)[0])
    (outcome,) = pipeline.invoke("ingest", drop_event("incoming/small.ndjson"))["objects"]
    # THEN it was ingested whole, with one S3 client for both
    assert outcome["status"] == "ingested"
    assert built.count("s3") == 1


def range_body(**changes: Any) -> dict[str, Any]:
    document = {"bucket": BUCKET, "key": "incoming/x", "version_id": None, "etag": None, "start": 0, "end": 9}
    return {k: v for k, v in {**document, **changes}.items() if v != "drop"}


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not a range",
        [1, 2],
        None,
        range_body(key="raw/x"),
        range_body(bucket="other"),
        range_body(start=9),
        range_body(start="0"),
        range_body(etag="drop"),
        range_body(extra=1),
        "x" * 5000,
    ],
)
def test_an_event_that_is_not_a_range_is_dropped(pipeline: Pipeline, body: Any) -> None:
    answer = pipeline.invoke("ingest", {"file_range": body})
    assert answer == {"ranges": [{"status": "dropped"}]}


def test_a_range_of_an_object_gone_is_reported_missing(pipeline: Pipeline, s3: Any, invocations: Invocations) -> None:
    data, _ids = ndjson(RANGE_BYTES + 100)
    s3.put_object(Bucket=BUCKET, Key="incoming/gone.ndjson", Body=data)
    pipeline.invoke("ingest", drop_event("incoming/gone.ndjson"))
    s3.delete_object(Bucket=BUCKET, Key="incoming/gone.ndjson")
    statuses = {pipeline.invoke("ingest", m)["ranges"][0]["status"] for m in invocations.events(INGEST)}
    assert statuses == {"missing"}

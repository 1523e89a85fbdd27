"""Micro-batching on AWS under moto: ingest puts each request on the request stream (Firehose), the
stream's objects under `requests/` become group batches, one execution each, and each request still
answers for itself, with no DynamoDB item written per request.

moto's Firehose writes one object per record at once; `deliver` stands in for Firehose's buffering:
it joins the records of one buffering interval into one object, as Firehose does, and sends the
object-created event EventBridge would.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest

from eventpipe.core.apps import new_app
from eventpipe.core.batch_ids import queued_id_facts
from eventpipe.core.errors import ConfigError
from tests.aws.conftest import APPS_TABLE, BUCKET, REGION, STATE_TABLE
from tests.aws.pipeline_harness import Pipeline, load_pipeline
from tests.aws.test_edge_on_aws import curated_item, post
from tests.conftest import make_event
from tests.unit.test_http_api import v2

if TYPE_CHECKING:
    from collections.abc import Sequence

STREAM = "eventpipe-requests"
PREFIX = "requests/"


@pytest.fixture
def stream(s3: Any) -> str:
    return create_request_stream()


def create_request_stream() -> str:
    """The request stream, delivering to the raw bucket under `requests/` (the bucket must exist)."""
    firehose = boto3.client("firehose", region_name=REGION)
    firehose.create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": PREFIX,
            "BufferingHints": {"IntervalInSeconds": 1, "SizeInMBs": 1},
        },
    )
    return STREAM


@pytest.fixture
def pipeline(dynamodb: Any, s3: Any, stream: str, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return load_pipeline(monkeypatch, EVENTPIPE_REQUEST_STREAM=stream)


def records(s3: Any) -> list[str]:
    """The objects moto's Firehose wrote, one per record, oldest first (their keys sort by time)."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}20")
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def object_created(key: str) -> dict[str, Any]:
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": BUCKET}, "object": {"key": key, "etag": "e-" + key[-12:]}},
    }


def deliver(pipeline: Pipeline, s3: Any, keys: Sequence[str], name: str) -> dict[str, Any]:
    """One buffered delivery: the records `keys` as one object, then its object-created event to ingest."""
    body = b"".join(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys)
    for key in keys:
        s3.delete_object(Bucket=BUCKET, Key=key)
    key = f"{PREFIX}buffered/{name}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    result: dict[str, Any] = pipeline.invoke("ingest", object_created(key))
    return result


def get_batch(pipeline: Pipeline, batch_id: str) -> dict[str, Any]:
    response = pipeline.invoke("ingest", v2("GET", f"/batches/{batch_id}", headers={}))
    assert response["statusCode"] == 200, response
    document: dict[str, Any] = orjson.loads(response["body"])
    return document


def state_items(dynamodb: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = dynamodb.scan(TableName=STATE_TABLE)["Items"]
    return items


def test_single_event_requests_become_one_execution_per_delivery(pipeline: Pipeline, s3: Any, dynamodb: Any) -> None:
    # GIVEN an app, and 120 single-event requests sent with its key, the last one invalid
    from eventpipe.adapters.aws.dynamodb_apps import DynamoAppStore

    app, key = new_app("shop", now_ms=pipeline.module.runtime.clock.now_ms())
    DynamoAppStore(APPS_TABLE, dynamodb).create(app)
    sent = [make_event() for _ in range(119)] + [make_event("add_to_cart", properties={"quantity": 0})]
    answers = [orjson.loads(pipeline.invoke("ingest", post([e], headers={"x-api-key": key}))["body"]) for e in sent]
    # THEN each is acknowledged with a queued id, pending, no execution has started and nothing is in DynamoDB
    assert all(a["received"] == 1 and queued_id_facts(a["batch_id"]) for a in answers)
    assert get_batch(pipeline, answers[0]["batch_id"])["status"] == "pending"
    assert pipeline.drain() == []
    assert state_items(dynamodb) == []
    # WHEN the stream delivers them in two buffered objects, 70 and 50 requests
    keys = records(s3)
    assert len(keys) == 120
    results = [deliver(pipeline, s3, keys[:70], "one"), deliver(pipeline, s3, keys[70:], "two")]
    # THEN two executions process all 120 events, each curated once under the app
    assert [r["objects"][0]["status"] for r in results] == ["grouped", "grouped"]
    # AND the delivered objects are not kept: their requests are in their groups' raw batches
    assert records(s3) == []
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}buffered/")["KeyCount"] == 0
    assert len(pipeline.drain()) == 2
    assert pipeline.failed == []
    for event in sent[:-1]:
        assert curated_item(dynamodb, event["event_id"])["app_id"] == app.app_id
    # AND each request answers for itself, the invalid one with its rejection at its own index
    first, last = get_batch(pipeline, answers[0]["batch_id"]), get_batch(pipeline, answers[-1]["batch_id"])
    assert (first["status"], first["curated"], first["duplicates"], first["rejected"]) == ("done", 1, 0, 0)
    assert (last["status"], last["curated"], last["rejected"]) == ("done", 0, 1)
    assert last["rejections"][0]["index"] == 0
    assert last["rejections"][0]["event_id"] == sent[-1]["event_id"]
    # AND the requests of each delivered object are one group (moto's records come in no set order)
    groups = Counter(get_batch(pipeline, a["batch_id"])["group"]["batch_id"] for a in answers)
    assert sorted(groups.values()) == [50, 70]
    # AND the state table holds no item per request: two groups, their index items, one rejection
    kinds = sorted(item["pk"]["S"].split("#")[0] for item in state_items(dynamodb))
    assert kinds.count("batch") == 3  # the two group records and the quarantined event
    assert len(kinds) <= 3 + 2 * 2  # an index item per group and 10-second bucket of its requests
    assert pipeline.module.runtime.batches.unfinished() == []


def test_a_small_request_builds_only_the_clients_it_calls(pipeline: Pipeline, dynamodb: Any) -> None:
    # GIVEN a fresh container, and an app's write key
    from eventpipe.adapters.aws.dynamodb_apps import DynamoAppStore

    runtime = pipeline.module.runtime
    app, key = new_app("shop", now_ms=runtime.clock.now_ms())
    DynamoAppStore(APPS_TABLE, dynamodb).create(app)
    # WHEN its first request, one event, is taken
    answer = orjson.loads(pipeline.invoke("ingest", post([make_event()], headers={"x-api-key": key}))["body"])
    assert answer["received"] == 1
    assert queued_id_facts(answer["batch_id"])
    # THEN it built the request stream's client and DynamoDB's (the key), not the S3 and Step Functions
    # clients its ingestor holds for larger requests
    clients = {
        "firehose": runtime.request_queue._client,
        "dynamodb": runtime._dynamodb,
        "s3": runtime.bucket._client,
        "stepfunctions": runtime.starter._client,
    }
    assert {name: client.built for name, client in clients.items()} == {
        "firehose": True,
        "dynamodb": True,
        "s3": False,
        "stepfunctions": False,
    }
    # AND a larger request builds them, and the container keeps them for the next invocations
    larger = [make_event() for _ in range(runtime.resources.microbatch_below_events)]
    answer = orjson.loads(pipeline.invoke("ingest", post(larger, headers={"x-api-key": key}))["body"])
    assert answer["received"] == len(larger)
    assert not queued_id_facts(answer["batch_id"])
    assert clients["s3"].built
    assert clients["stepfunctions"].built
    assert runtime.bucket._client is clients["s3"]
    assert len(pipeline.drain()) == 1


def test_a_thousand_requests_at_100_a_second_take_at_most_20_executions(
    pipeline: Pipeline, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 1,000 single-event requests over 10 s (the clock steps 10 ms a request)
    runtime = pipeline.module.runtime
    start, sent = runtime.clock.now_ms(), [0]
    answers = []
    # the clock alone is restored after: undo() would also unset the functions' environment, which
    # a client built later (at its first call) reads
    with monkeypatch.context() as patch:
        patch.setattr(runtime.clock, "now_ms", lambda: start + 10 * sent[0])
        for n in range(1000):
            sent[0] = n
            answers.append(orjson.loads(pipeline.invoke("ingest", post([make_event()]))["body"]))
    # WHEN the stream delivers what each 1-second buffering interval holds (about 100 requests an object)
    keys = records(s3)
    for second in range(10):
        deliver(pipeline, s3, keys[second * 100 : (second + 1) * 100], f"s{second}")
    # THEN ten executions, every request done with its one event curated
    assert len(pipeline.drain()) <= 20
    done = [get_batch(pipeline, a["batch_id"]) for a in answers[::97]]
    assert {(d["status"], d["curated"]) for d in done} == {("done", 1)}


def test_an_object_delivered_again_or_a_request_in_two_objects_is_processed_once(
    pipeline: Pipeline, s3: Any, dynamodb: Any
) -> None:
    # GIVEN three requests delivered, grouped and processed
    sent = [make_event() for _ in range(3)]
    answers = [orjson.loads(pipeline.invoke("ingest", post([e]))["body"]) for e in sent]
    keys = records(s3)
    copies = [s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys]
    deliver(pipeline, s3, keys, "first")
    assert len(pipeline.drain()) == 1
    groups_before = _groups(dynamodb)
    # WHEN the same object comes again (its event, and the object itself, as if its first grouping had
    # stopped before deleting it), and a later object holds a copy of one request and a new one
    assert pipeline.invoke("ingest", object_created(f"{PREFIX}buffered/first"))["objects"][0]["status"] == "missing"
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}buffered/first-again", Body=b"".join(copies))
    again_result = pipeline.invoke("ingest", object_created(f"{PREFIX}buffered/first-again"))
    assert again_result["objects"][0]["status"] == "grouped"
    new = make_event()
    new_answer = orjson.loads(pipeline.invoke("ingest", post([new]))["body"])
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}2099/copy", Body=copies[0])
    deliver(pipeline, s3, [f"{PREFIX}2099/copy", *records(s3)], "second")
    # THEN only the new request makes a new group; the old ones stay in theirs, counted once
    assert len(pipeline.drain()) == 1
    assert len(_groups(dynamodb)) == len(groups_before) + 1
    assert get_batch(pipeline, new_answer["batch_id"])["curated"] == 1
    again = get_batch(pipeline, answers[0]["batch_id"])
    assert (again["curated"], again["duplicates"], again["group"]["batch_id"]) == (1, 0, groups_before[0])


def test_lines_that_are_not_requests_are_skipped_and_the_others_grouped(pipeline: Pipeline, s3: Any) -> None:
    pipeline.invoke("ingest", post([make_event()]))
    keys = records(s3)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}2099/bad", Body=b"not base64 gzip\n" + b"x" * 5_000_000 + b"\n")
    result = deliver(pipeline, s3, [f"{PREFIX}2099/bad", *keys], "mixed")
    assert (result["objects"][0]["status"], result["objects"][0]["received"]) == ("grouped", 1)
    assert len(pipeline.drain()) == 1


def test_a_request_too_large_for_a_record_is_a_batch_of_its_own(pipeline: Pipeline) -> None:
    pipeline.module.runtime.request_queue.max_message_bytes = 64
    answer = orjson.loads(pipeline.invoke("ingest", post([make_event(), make_event()]))["body"])
    assert queued_id_facts(answer["batch_id"]) is None
    assert len(pipeline.drain()) == 1
    assert get_batch(pipeline, answer["batch_id"])["curated"] == 2


def test_an_unknown_queued_id_is_pending_only_while_it_may_be_in_the_stream(pipeline: Pipeline) -> None:
    now = pipeline.module.runtime.clock.now_ms()
    young, old = f"q{now:011x}003{'0' * 16}", f"q{now - 3_600_000:011x}003{'0' * 16}"
    assert get_batch(pipeline, young)["received"] == 3
    assert pipeline.invoke("ingest", v2("GET", f"/batches/{old}", headers={}))["statusCode"] == 404


def test_a_stream_that_fails_answers_503_and_stores_nothing(pipeline: Pipeline, s3: Any) -> None:
    pipeline.module.runtime.request_queue.stream_name = "no-such-stream"
    response = pipeline.invoke("ingest", post([make_event()]))
    assert response["statusCode"] == 503
    assert records(s3) == []


def _groups(dynamodb: Any) -> list[str]:
    return [i["batch_id"]["S"] for i in state_items(dynamodb) if i.get("source", {}).get("S") == "group"]


def test_a_queued_request_writes_no_log_line_and_its_object_counts_its_events(
    pipeline: Pipeline, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN three single-event requests put on the stream
    capsys.readouterr()
    for _ in range(3):
        assert pipeline.invoke("ingest", post([make_event()]))["statusCode"] == 202
    # THEN their invocations wrote nothing: no log line, no metrics (at one event a request, logs cost most)
    assert capsys.readouterr().out == ""
    # WHEN their object is grouped
    deliver(pipeline, s3, records(s3), "counted")
    # THEN its invocation counts their events, as their own invocations would have
    metrics = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    received = [
        document["EventsReceived"]
        for document in metrics
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
        if metric["Name"] == "EventsReceived"
    ]
    assert sum(sum(value if isinstance(value, list) else [value]) for value in received) == 3


def test_a_request_of_a_batchs_worth_is_a_batch_of_its_own(pipeline: Pipeline, s3: Any, dynamodb: Any) -> None:
    # GIVEN the stream takes requests of fewer than 100 events (EVENTPIPE_MICROBATCH_BELOW_EVENTS)
    # WHEN one request holds 99 events and another 100
    small = orjson.loads(pipeline.invoke("ingest", post([make_event() for _ in range(99)]))["body"])
    large = orjson.loads(pipeline.invoke("ingest", post([make_event() for _ in range(100)]))["body"])
    # THEN only the small one goes to the stream; the large one is stored and started at once
    assert queued_id_facts(small["batch_id"])
    assert not queued_id_facts(large["batch_id"])
    assert len(records(s3)) == 1
    assert len(pipeline.drain()) == 1
    assert get_batch(pipeline, large["batch_id"])["status"] == "done"


def test_the_threshold_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventpipe.settings import AwsResources

    names = {"EVENTPIPE_BUCKET": "b", "EVENTPIPE_CURATED_TABLE": "c", "EVENTPIPE_STATE_TABLE": "s"}
    environ = {**names, "EVENTPIPE_INSIGHTS_TABLE": "i", "EVENTPIPE_MICROBATCH_BELOW_EVENTS": "20"}
    assert AwsResources.from_env(environ).microbatch_below_events == 20
    with pytest.raises(ConfigError, match="EVENTPIPE_MICROBATCH_BELOW_EVENTS"):
        AwsResources.from_env({**environ, "EVENTPIPE_MICROBATCH_BELOW_EVENTS": "0"})

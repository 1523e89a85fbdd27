"""A throttled StartExecution is retried within a minute, from the start-retry queue, under moto.

Step Functions throttles StartExecution past the account's token bucket. moto never does, so the
tests make the state machine's client answer `ThrottlingException` through botocore's own event
hooks (the request never leaves the client, as with a real throttle after botocore's retries).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError

from eventpipe.adapters.aws.start_queue import START_RETRY_DELAY_S
from eventpipe.core.model import BatchStatus
from eventpipe.handlers.start_batches import start_queued_batch
from tests.aws.conftest import REGION
from tests.aws.pipeline_harness import Pipeline, load_pipeline
from tests.conftest import make_event

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.fixture
def queue_url(aws: None) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    url: str = sqs.create_queue(QueueName="eventpipe-start-retries", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    return url


@pytest.fixture
def pipeline(dynamodb: Any, s3: Any, queue_url: str, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return load_pipeline(monkeypatch, EVENTPIPE_START_QUEUE_URL=queue_url)


def throttle_starts(pipeline: Pipeline, times: int) -> Callable[[], int]:
    """The next `times` StartExecution calls of the functions' client fail as throttled; returns a call counter."""
    calls = {"n": 0}

    def throttled(**_kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= times:
            error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
            raise ClientError(error, "StartExecution")

    client = pipeline.module.runtime.starter._client
    client.meta.events.register("before-call.states.StartExecution", throttled)
    return lambda: calls["n"]


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """moto's SQS clock moves on by `seconds`: delayed messages become visible."""
    import moto.sqs.models

    now = moto.sqs.models.unix_time_millis
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda: now() + seconds * 1000)


def sqs_event(queue_url: str) -> dict[str, Any]:
    """What Lambda's SQS event source hands `start_batches`: the visible messages of the queue."""
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def queue_counts(queue_url: str) -> tuple[int, int]:
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesDelayed"])


def test_a_throttled_start_is_queued_and_started_by_start_batches_within_a_minute(
    pipeline: Pipeline, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN StartExecution throttled (botocore's own retries are spent too)
    throttle_starts(pipeline, times=1)
    # WHEN a request is ingested
    answer = pipeline.invoke("ingest", {"events": [make_event("page_view"), make_event("signup")]})
    # THEN it is acknowledged, no execution started, and the start waits on the queue for a few seconds
    batch_id = answer["batch_id"]
    assert answer["received"] == 2
    assert pipeline.drain() == []
    assert queue_counts(queue_url) == (0, 1)
    assert START_RETRY_DELAY_S < 60
    # WHEN the delay has passed and SQS hands the message to start_batches
    later(monkeypatch, START_RETRY_DELAY_S + 1)
    event = sqs_event(queue_url)
    assert [orjson.loads(r["body"])["batch_id"] for r in event["Records"]] == [batch_id]
    assert pipeline.invoke("start_batches", event) == {"batchItemFailures": []}
    # THEN the batch's execution runs (named after the batch) and the batch is done
    assert pipeline.drain() == [batch_id]
    record = pipeline.module.runtime.batches.get(batch_id)
    assert record is not None
    assert (record.status, record.curated) == (BatchStatus.DONE, 2)


def test_a_start_that_fails_again_is_reported_so_sqs_delivers_it_again(
    pipeline: Pipeline, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a queued start, and StartExecution still throttled at its first retry
    calls = throttle_starts(pipeline, times=2)
    batch_id = pipeline.invoke("ingest", {"events": [make_event("page_view")]})["batch_id"]
    later(monkeypatch, START_RETRY_DELAY_S + 1)
    event = sqs_event(queue_url)
    # WHEN start_batches runs THEN the record is a batch item failure (SQS keeps the message)
    answer = pipeline.invoke("start_batches", event)
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert calls() == 2
    # AND the next delivery starts it
    assert pipeline.invoke("start_batches", event) == {"batchItemFailures": []}
    assert pipeline.drain() == [batch_id]


def test_a_done_or_unknown_batch_is_skipped_and_a_foreign_message_dropped(pipeline: Pipeline) -> None:
    runtime = pipeline.module.runtime
    batch_id = pipeline.invoke("ingest", {"events": [make_event("page_view")]})["batch_id"]
    pipeline.drain()
    done = orjson.dumps({"batch_id": batch_id, "raw_key": f"raw/{batch_id}.ndjson"}).decode()
    assert start_queued_batch(done, runtime.batches, runtime.starter) == "skipped"
    unknown = orjson.dumps({"batch_id": "no-such-batch", "raw_key": "raw/x.ndjson"}).decode()
    assert start_queued_batch(unknown, runtime.batches, runtime.starter) == "skipped"
    for body in ["", "not json", "[1]", '{"batch_id": "../x", "raw_key": "k"}', '{"batch_id": "b"}', "x" * 5000]:
        assert start_queued_batch(body, runtime.batches, runtime.starter) == "dropped", body
    assert pipeline.drain() == []  # nothing started twice


def test_when_the_queue_fails_too_the_batch_stays_pending_for_the_schedule(pipeline: Pipeline, queue_url: str) -> None:
    # GIVEN StartExecution throttled and the queue gone
    throttle_starts(pipeline, times=1)
    boto3.client("sqs", region_name=REGION).delete_queue(QueueUrl=queue_url)
    # WHEN a request is ingested THEN it is still acknowledged, and the batch waits, pending
    answer = pipeline.invoke("ingest", {"events": [make_event("page_view")]})
    record = pipeline.module.runtime.batches.get(answer["batch_id"])
    assert record is not None
    assert record.status is BatchStatus.PENDING
    # AND a replay (the pending-batch schedule) restarts it
    assert pipeline.invoke("replay", {})["batches"] == 1
    assert pipeline.drain()

"""Micro-batching on AWS under moto: ingest sends small requests to SQS, the batching function groups
what SQS delivers into one batch and one execution, and each request still answers for itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest

from eventpipe.core.apps import new_app
from eventpipe.core.batch_ids import queued_id_facts
from tests.aws.conftest import APPS_TABLE, REGION, STATE_TABLE
from tests.aws.pipeline_harness import Pipeline, load_pipeline
from tests.aws.test_edge_on_aws import curated_item, post
from tests.conftest import NOW_MS, make_event
from tests.unit.test_http_api import v2

if TYPE_CHECKING:
    from eventpipe.adapters.aws.dynamodb_apps import DynamoAppStore  # noqa: F401


@pytest.fixture
def queue(aws: None) -> tuple[Any, str]:
    client = boto3.client("sqs", region_name=REGION)
    return client, client.create_queue(QueueName="eventpipe-requests")["QueueUrl"]


@pytest.fixture
def pipeline(dynamodb: Any, s3: Any, queue: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return load_pipeline(monkeypatch, EVENTPIPE_REQUEST_QUEUE_URL=queue[1])


def delivered(queue: tuple[Any, str], limit: int = 99) -> list[dict[str, Any]]:
    """What SQS hands the batching function: up to `limit` messages as SQS event records (then deleted)."""
    client, url = queue
    records: list[dict[str, Any]] = []
    while len(records) < limit:
        got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(records)))
        messages = got.get("Messages", [])
        if not messages:
            break
        for message in messages:
            records.append({"messageId": message["MessageId"], "body": message["Body"], "eventSource": "aws:sqs"})
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return records


def get_batch(pipeline: Pipeline, batch_id: str) -> dict[str, Any]:
    response = pipeline.invoke("ingest", v2("GET", f"/batches/{batch_id}", headers={}))
    assert response["statusCode"] == 200, response
    document: dict[str, Any] = orjson.loads(response["body"])
    return document


def test_single_event_requests_become_one_execution_per_delivery(
    pipeline: Pipeline, queue: tuple[Any, str], dynamodb: Any
) -> None:
    # GIVEN an app, and 120 single-event requests sent with its key
    from eventpipe.adapters.aws.dynamodb_apps import DynamoAppStore

    app, key = new_app("shop", now_ms=NOW_MS)
    DynamoAppStore(APPS_TABLE, dynamodb).create(app)
    sent = [make_event() for _ in range(119)] + [make_event("add_to_cart", properties={"quantity": 0})]
    answers = [orjson.loads(pipeline.invoke("ingest", post([e], headers={"x-api-key": key}))["body"]) for e in sent]
    # THEN each is acknowledged with a queued id, pending, and no execution has started yet
    assert all(a["received"] == 1 and queued_id_facts(a["batch_id"]) for a in answers)
    assert get_batch(pipeline, answers[0]["batch_id"])["status"] == "pending"
    assert pipeline.drain() == []
    # WHEN SQS delivers them to the batching function, 99 and then 21
    results = [pipeline.invoke("batch_requests", {"Records": delivered(queue)}) for _ in range(2)]
    # THEN two executions process all 120 events, each curated once under the app
    assert [r["batchItemFailures"] for r in results] == [[], []]
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
    assert first["group"]["batch_id"] != last["group"]["batch_id"]
    # AND grouped requests are not work left: the restart schedule finds nothing
    assert pipeline.module.runtime.batches.unfinished() == []


def test_a_delivery_again_changes_nothing_and_a_mixed_one_groups_only_the_new(
    pipeline: Pipeline, queue: tuple[Any, str], dynamodb: Any
) -> None:
    # GIVEN three requests grouped and processed
    for _ in range(3):
        pipeline.invoke("ingest", post([make_event()]))
    records = delivered(queue)
    assert pipeline.invoke("batch_requests", {"Records": records})["batchItemFailures"] == []
    assert len(pipeline.drain()) == 1
    groups_before = _groups(dynamodb)
    # WHEN SQS delivers the same messages again (at least once), alone and with a new request
    assert pipeline.invoke("batch_requests", {"Records": records})["batchItemFailures"] == []
    new = make_event()
    answer = orjson.loads(pipeline.invoke("ingest", post([new]))["body"])
    assert pipeline.invoke("batch_requests", {"Records": [*records[:2], *delivered(queue)]})["batchItemFailures"] == []
    # THEN the old requests stay in their group, and only the new one makes a new group
    assert len(pipeline.drain()) == 1
    assert len(_groups(dynamodb)) == len(groups_before) + 1
    assert get_batch(pipeline, answer["batch_id"])["curated"] == 1
    assert curated_item(dynamodb, new["event_id"])


def test_a_message_that_is_not_a_request_is_reported_for_the_dead_letter_queue(
    pipeline: Pipeline, queue: tuple[Any, str]
) -> None:
    pipeline.invoke("ingest", post([make_event()]))
    good = delivered(queue)
    bad = [{"messageId": "m-bad", "body": "not base64 gzip", "eventSource": "aws:sqs"}]
    result = pipeline.invoke("batch_requests", {"Records": [*bad, *good]})
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert len(pipeline.drain()) == 1


def test_a_request_too_large_for_a_message_is_a_batch_of_its_own(pipeline: Pipeline) -> None:
    pipeline.module.runtime.request_queue.max_message_bytes = 64
    answer = orjson.loads(pipeline.invoke("ingest", post([make_event(), make_event()]))["body"])
    assert queued_id_facts(answer["batch_id"]) is None
    assert len(pipeline.drain()) == 1
    assert get_batch(pipeline, answer["batch_id"])["curated"] == 2


def test_an_unknown_queued_id_is_pending_only_while_it_may_be_in_the_queue(pipeline: Pipeline) -> None:
    now = pipeline.module.runtime.clock.now_ms()
    young, old = f"q{now:011x}003{'0' * 16}", f"q{now - 3_600_000:011x}003{'0' * 16}"
    assert get_batch(pipeline, young)["received"] == 3
    assert pipeline.invoke("ingest", v2("GET", f"/batches/{old}", headers={}))["statusCode"] == 404


def _groups(dynamodb: Any) -> list[str]:
    items = dynamodb.scan(TableName=STATE_TABLE)["Items"]
    return [i["batch_id"]["S"] for i in items if i.get("source", {}).get("S") == "group"]

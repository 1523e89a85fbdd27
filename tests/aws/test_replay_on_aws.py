"""The `replay` Lambda function under moto: a failed batch runs again under a new execution name and ends
done with its events curated once; quarantined events of a type registered since are curated on replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.adapters.aws.dynamodb_quarantine import DynamoQuarantine
from eventpipe.adapters.aws.tables import CURATED_TABLE as CURATED_TABLE_SPEC
from eventpipe.core.rawbatch import raw_key
from tests.aws.conftest import BUCKET, CURATED_TABLE, STATE_TABLE
from tests.aws.pipeline_harness import Pipeline, load_pipeline
from tests.conftest import make_event

if TYPE_CHECKING:
    from eventpipe.core.model import Rejection

EVENTS = Path(__file__).parents[1] / "events"
REFUND_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "refund 1-0-0",
    "type": "object",
    "required": ["order_id", "amount", "currency"],
    "properties": {
        "order_id": {"type": "string", "maxLength": 64},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
    "additionalProperties": False,
}


def refund(**properties: Any) -> dict[str, Any]:
    """An event of the type `refund`, valid in every member of the envelope."""
    event = make_event("page_view", properties=properties)
    event["event_type"] = "refund"
    return event


@pytest.fixture
def pipeline(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return load_pipeline(monkeypatch)


def accept(pipeline: Pipeline, events: list[dict[str, Any]]) -> str:
    """Ingest `events` as one request (a direct invocation); its batch id."""
    answer = pipeline.invoke("ingest", {"events": events})
    assert answer["rejected"] == 0
    batch_id: str = answer["batch_id"]
    return batch_id


def batch(pipeline: Pipeline, batch_id: str) -> dict[str, Any]:
    """The batch as `GET /batches/{id}` answers it."""
    event = json.loads((EVENTS / "apigw_http_v2_post_events.json").read_text())
    event.update(rawPath=f"/batches/{batch_id}", body=None)
    event["requestContext"]["http"]["method"] = "GET"
    response = pipeline.invoke("ingest", event)
    assert response["statusCode"] == 200
    document: dict[str, Any] = orjson.loads(response["body"])
    return document


def curated(dynamodb: Any) -> dict[str, dict[str, Any]]:
    """Every curated item by event_id (a scan: a second copy of an event would show as a second item)."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=CURATED_TABLE)
    items = [item for page in pages for item in page["Items"]]
    by_id = {item["event_id"]["S"]: item for item in items}
    assert len(by_id) == len(items)
    return by_id


def quarantine_items(dynamodb: Any) -> list[dict[str, Any]]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=STATE_TABLE)
    return [item for page in pages for item in page["Items"] if item["sk"]["S"].startswith("rej#")]


def quarantined(dynamodb: Any) -> list[Rejection]:
    return list(DynamoQuarantine(STATE_TABLE, dynamodb).iter_all())


def test_replay_runs_a_failed_batch_again_under_a_new_execution(pipeline: Pipeline, dynamodb: Any, s3: Any) -> None:
    # GIVEN a batch whose ProcessBatch kept failing (the curated table was gone), so it is failed
    events = [make_event("page_view"), make_event("add_to_cart"), make_event("purchase")]
    batch_id = accept(pipeline, events)
    dynamodb.delete_table(TableName=CURATED_TABLE)
    assert pipeline.drain() == [batch_id]
    assert pipeline.failed == [batch_id]
    assert batch(pipeline, batch_id)["status"] == "failed"
    # AND the table is back
    dynamodb.create_table(TableName=CURATED_TABLE, **CURATED_TABLE_SPEC)
    # WHEN the replay function is invoked with {}
    answer = pipeline.invoke("replay", {})
    # THEN it started that batch again, under a new execution name made from the batch id
    assert (answer["batches"], answer["received"]) == (1, 3)
    executions = pipeline.drain()
    assert len(executions) == 1
    assert executions[0].startswith(f"{batch_id}-retry-")
    assert executions[0] != batch_id
    assert pipeline.failed == [batch_id]  # the retry did not fail
    # AND after it ran, the batch is done and each event is curated once
    record = batch(pipeline, batch_id)
    assert (record["status"], record["received"], record["curated"], record["duplicates"]) == ("done", 3, 3, 0)
    assert set(curated(dynamodb)) == {e["event_id"] for e in events}
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="staged/")["KeyCount"] == 0  # nothing is staged between steps
    # AND a second replay finds nothing left to run
    assert pipeline.invoke("replay", {})["batches"] == 0
    assert pipeline.drain() == []


def test_replay_of_a_done_batch_starts_nothing(pipeline: Pipeline) -> None:
    batch_id = accept(pipeline, [make_event("page_view")])
    pipeline.drain()
    assert batch(pipeline, batch_id)["status"] == "done"
    assert pipeline.invoke("replay", {}) == {"batches": 0, "received": 0, "unfinished": []}
    assert pipeline.drain() == []


def test_replay_rejected_curates_events_of_a_type_registered_since(
    pipeline: Pipeline, dynamodb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a batch with a valid event and two valid-looking refunds, a type no schema registers yet
    refunds = [refund(order_id="o-1", amount=59.9, currency="EUR") for _ in range(2)]
    bad_refund = refund(order_id="o-2", amount=-1)
    page_view = make_event("page_view")
    batch_id = accept(pipeline, [page_view, *refunds, bad_refund])
    pipeline.drain()
    first = batch(pipeline, batch_id)
    assert (first["status"], first["curated"], first["rejected"]) == ("done", 1, 3)
    assert {r["reasons"][0]["code"] for r in first["rejections"]} == {"unknown_event_type"}
    assert len(quarantined(dynamodb)) == 3
    # AND the three records are one item of the batch's partition (one write)
    assert [item["sk"]["S"] for item in quarantine_items(dynamodb)] == ["rej#+00000000"]
    # AND then a refund schema is added in EVENTPIPE_SCHEMA_DIR, and the functions start with it
    schema_dir = tmp_path / "schemas"
    (schema_dir / "refund").mkdir(parents=True)
    (schema_dir / "refund" / "1-0-0.json").write_text(json.dumps(REFUND_SCHEMA))
    replayed = load_pipeline(monkeypatch, EVENTPIPE_SCHEMA_DIR=str(schema_dir))
    replayed.ran |= pipeline.ran  # the same state machine: its earlier executions ran already
    # WHEN the replay function is invoked with {"rejected": true} and its executions run
    answer = replayed.invoke("replay", {"rejected": True})
    assert (answer["batches"], answer["received"]) == (1, 3)
    executions = replayed.drain()
    assert len(executions) == 1
    assert replayed.failed == []
    # THEN the two valid refunds are curated, once each, beside the page view
    assert set(curated(dynamodb)) == {page_view["event_id"], *(r["event_id"] for r in refunds)}
    # AND their quarantine records are released; the refund that breaks the schema stays, with its new reason
    (left,) = quarantined(dynamodb)
    assert left.batch_id == batch_id
    (item,) = quarantine_items(dynamodb)
    assert item["v"] == {"N": "3"}  # written once, then rewritten under its version: new reasons, two released
    rejections = batch(pipeline, batch_id)["rejections"]
    assert [(r["event_id"], r["reasons"][0]["code"]) for r in rejections] == [
        (bad_refund["event_id"], "schema_violation")
    ]
    # AND the original batch keeps its counts: the replay is a batch of its own
    assert (batch(replayed, batch_id)["curated"], batch(replayed, batch_id)["rejected"]) == (1, 3)
    # AND replaying again curates nothing twice
    replayed.invoke("replay", {"rejected": True})
    replayed.drain()
    assert len(curated(dynamodb)) == 3
    assert len(quarantined(dynamodb)) == 1


def test_two_rejected_replays_before_either_runs_curate_once(
    pipeline: Pipeline, dynamodb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN two refunds quarantined for their unknown type, and then a refund schema
    refunds = [refund(order_id=f"o-{n}", amount=1.5, currency="EUR") for n in range(2)]
    batch_id = accept(pipeline, refunds)
    pipeline.drain()
    schema_dir = tmp_path / "schemas"
    (schema_dir / "refund").mkdir(parents=True)
    (schema_dir / "refund" / "1-0-0.json").write_text(json.dumps(REFUND_SCHEMA))
    replayed = load_pipeline(monkeypatch, EVENTPIPE_SCHEMA_DIR=str(schema_dir))
    replayed.ran |= pipeline.ran
    # WHEN the replay is invoked twice before Step Functions runs either (a retried invocation)
    first = replayed.invoke("replay", {"rejected": True})
    second = replayed.invoke("replay", {"rejected": True})
    assert first["batches"] == second["batches"] == 1
    assert len(replayed.drain()) == 2
    # THEN each refund is curated once, the quarantine is empty, and the original batch is unchanged
    assert set(curated(dynamodb)) == {r["event_id"] for r in refunds}
    assert quarantined(dynamodb) == []
    assert quarantine_items(dynamodb) == []  # an item left with no record is deleted
    assert batch(replayed, batch_id)["rejections"] == []
    # AND insights count each refund once (at its own time: sent_at is days before the real clock's now,
    # too far off for a clock's skew, so it is not corrected)
    event = json.loads((EVENTS / "apigw_http_v2_post_events.json").read_text())
    window = {"since": "2026-11-28T05:00:00Z", "until": "2026-11-28T07:00:00Z"}
    event.update(rawPath="/insights", body=None, queryStringParameters=window)
    event["requestContext"]["http"]["method"] = "GET"
    insights = orjson.loads(replayed.invoke("ingest", event)["body"])
    assert insights["totals"]["by_type"].get("refund") == 2


def test_a_retried_process_batch_writes_the_same_quarantine_item(pipeline: Pipeline, dynamodb: Any) -> None:
    # GIVEN a batch with two rejected events among valid ones, processed once
    events = [make_event("page_view"), refund(order_id="o-1"), make_event("signup"), refund(order_id="o-2")]
    batch_id = accept(pipeline, events)
    pipeline.drain()
    (item,) = quarantine_items(dynamodb)
    # WHEN its ProcessBatch runs again, its done record forgotten (a retry after a timeout that had written)
    dynamodb.update_item(
        TableName=STATE_TABLE,
        Key={"pk": {"S": f"batch#{batch_id}"}, "sk": {"S": "batch"}},
        UpdateExpression="SET #s = :p",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": {"S": "pending"}},
    )
    again = pipeline.invoke("process_batch", {"batch_id": batch_id, "raw_key": raw_key(batch_id)})
    # THEN it rejects the same two, and the quarantine holds the same one item, unchanged (version 1)
    assert sum(again["rejected"].values()) == 2
    assert quarantine_items(dynamodb) == [item]
    assert item["v"] == {"N": "1"}
    assert [r.index for r in quarantined(dynamodb)] == [1, 3]

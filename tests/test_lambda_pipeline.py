"""The whole AWS code path under moto: Lambda entry points, boto3 adapters, and the Step Functions
definition interpreted locally with its Tasks bound to the Lambda handlers, driven by AWS's own
event shapes (tests/events/, made with `sam local generate-event`)."""

from __future__ import annotations

import base64
import gzip
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.core.errors import InputError
from eventpipe.handlers.functions import FUNCTIONS
from tests.aws.conftest import ANALYTICS_BUCKET, BUCKET, CURATED_TABLE
from tests.aws.pipeline_harness import Pipeline, load_pipeline
from tests.conftest import make_event

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

EVENTS = Path(__file__).parent / "events"
SAMPLE = Path(__file__).parent.parent / "events" / "sample.json"
STATE_LIMIT = 256 * 1024  # Step Functions' payload limit


def canned(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def http_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An HTTP API (v2) event for another route, from the canned POST /events one."""
    event = canned("apigw_http_v2_post_events.json")
    event.update(rawPath=path, routeKey=f"{method} {path}", body=body, isBase64Encoded=False)
    event["headers"] = headers or {}
    event["queryStringParameters"] = query
    event["requestContext"]["http"].update(method=method, path=path)
    return event


@pytest.fixture
def pipeline(dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    return load_pipeline(monkeypatch)


def curated_ids(dynamodb: Any) -> set[str]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=CURATED_TABLE, ProjectionExpression="event_id")
    return {item["event_id"]["S"] for page in pages for item in page["Items"]}


def answer(response: dict[str, Any]) -> Any:
    return orjson.loads(response["body"])


def test_the_module_exports_one_entry_point_per_function_of_the_registry(pipeline: Pipeline) -> None:
    # GIVEN the registry of functions WHEN lambda_pipeline is imported
    # THEN each function is an attribute of the module under its own name (the templates' Handler)
    assert set(pipeline.module.__all__) == set(FUNCTIONS)
    for name, function in FUNCTIONS.items():
        handler = getattr(pipeline.module, name)
        assert callable(handler)
        assert (handler.__name__, handler.__doc__) == (name, function.doc)


# --- HTTP API ---------------------------------------------------------------------------------


def test_http_api_v2_event_ends_as_curated_items_and_insights(pipeline: Pipeline, dynamodb: Any) -> None:
    # GIVEN the canned HTTP API event carrying three valid events
    event = canned("apigw_http_v2_post_events.json")
    sent = {e["event_id"] for e in json.loads(event["body"])}
    # WHEN ingest answers and Step Functions runs the execution it started
    response = pipeline.invoke("ingest", event)
    executions = pipeline.drain()
    # THEN the request was accepted as one batch, run as one execution named after it
    assert response["statusCode"] == 202
    accepted = answer(response)
    assert accepted == {"batch_id": accepted["batch_id"], "received": 3, "rejected": 0, "errors": []}
    assert executions == [accepted["batch_id"]]
    # AND every event is a curated item in DynamoDB, the batch is done and insights count them
    assert curated_ids(dynamodb) == sent
    batch = answer(pipeline.invoke("ingest", http_event("GET", f"/batches/{accepted['batch_id']}")))
    assert batch == {
        "batch_id": accepted["batch_id"], "status": "done", "received": 3, "curated": 3,
        "duplicates": 0, "rejected": 0, "rejections": [],
    }  # fmt: skip
    # (at their own time: their sent_at is days ago, too far off for a clock's skew, so it is not corrected)
    window = {"since": "2026-11-28T05:30:00Z", "until": "2026-11-28T06:30:00Z"}
    insights = answer(pipeline.invoke("ingest", http_event("GET", "/insights", query=window)))
    assert insights["totals"]["events"] == 3
    assert insights["totals"]["revenue"] > 0


def test_a_poll_after_a_new_batch_sees_it_through_the_functions_sketch_cache(pipeline: Pipeline) -> None:
    # GIVEN a batch processed and the dashboard's first poll (it fills the ingest function's sketch cache)
    event = canned("apigw_http_v2_post_events.json")
    window = {"since": "2026-11-28T05:30:00Z", "until": "2026-11-28T06:30:00Z"}
    pipeline.invoke("ingest", event)
    pipeline.drain()
    first = answer(pipeline.invoke("ingest", http_event("GET", "/insights", query=window)))
    # WHEN the same events under new ids and another session land in the same minutes, and it polls again
    again = json.loads(event["body"])
    for number, item in enumerate(again):
        item["event_id"] = f"00000000-0000-4000-8000-{number:012d}"
        item["session_id"] = "s-later"
    assert pipeline.invoke("ingest", {**event, "body": json.dumps(again)})["statusCode"] == 202
    pipeline.drain()
    second = answer(pipeline.invoke("ingest", http_event("GET", "/insights", query=window)))
    # THEN the second poll counts the new events and the new session in the funnel
    assert second["totals"]["events"] == 2 * first["totals"]["events"]
    assert second["funnel"]["page_view"] == first["funnel"]["page_view"] + 1


def test_rest_api_v1_event_and_the_sample_payload_are_accepted(pipeline: Pipeline, dynamodb: Any) -> None:
    # GIVEN the canned REST (v1) event and events/sample.json, the payload the README's `aws lambda invoke` sends
    rest = canned("apigw_rest_v1_post_events.json")
    sample = json.loads(SAMPLE.read_text())
    # WHEN both are ingested and processed
    responses = [pipeline.invoke("ingest", rest), pipeline.invoke("ingest", sample)]
    pipeline.drain()
    # THEN both are accepted and all 2 + 5 events are curated
    assert [r["statusCode"] for r in responses] == [202, 202]
    assert [answer(r)["received"] for r in responses] == [2, 5]
    assert len(curated_ids(dynamodb)) == 7


def test_events_refused_at_ingest_are_reported_and_invalid_ones_quarantined(pipeline: Pipeline) -> None:
    # GIVEN NDJSON with a valid event, a line that is not JSON, an event without event_id and one breaking its schema
    bad_schema = make_event("purchase", properties={"order_id": "o-1", "revenue": -1, "currency": "EUR", "items": []})
    no_id = make_event("page_view")
    del no_id["event_id"]
    body = b"\n".join(
        [orjson.dumps(make_event("page_view")), b"{not json", orjson.dumps(no_id), orjson.dumps(bad_schema)]
    )
    event = http_event("POST", "/events", body=body.decode(), headers={"content-type": "application/x-ndjson"})
    # WHEN it is ingested and processed
    accepted = answer(pipeline.invoke("ingest", event))
    pipeline.drain()
    # THEN the 202 names the two shape failures by 0-based index and line, and the batch record shows every
    # rejection at the same index, with its path
    assert accepted["received"] == 4
    assert [(e["index"], e["line"], e["reasons"][0]["code"]) for e in accepted["errors"]] == [
        (1, 2, "malformed_json"),
        (2, 3, "envelope_invalid"),
    ]
    batch = answer(pipeline.invoke("ingest", http_event("GET", f"/batches/{accepted['batch_id']}")))
    assert (batch["status"], batch["curated"], batch["rejected"]) == ("done", 1, 3)
    by_index = {r["index"]: r for r in batch["rejections"]}
    assert sorted(by_index) == [1, 2, 3]
    assert by_index[3]["event_id"] == bad_schema["event_id"]
    assert {r["path"] for r in by_index[3]["reasons"]} >= {"$.properties.revenue", "$.properties.items"}


def test_duplicates_across_requests_are_counted_once(pipeline: Pipeline, dynamodb: Any) -> None:
    # GIVEN the same three events sent twice (a client retry)
    event = canned("apigw_http_v2_post_events.json")
    first = answer(pipeline.invoke("ingest", event))
    pipeline.drain()
    second = answer(pipeline.invoke("ingest", event))
    pipeline.drain()
    # THEN there are two batches, three curated items, and the second batch counts three duplicates
    assert first["batch_id"] != second["batch_id"]
    assert len(curated_ids(dynamodb)) == 3
    again = answer(pipeline.invoke("ingest", http_event("GET", f"/batches/{second['batch_id']}")))
    assert (again["curated"], again["duplicates"]) == (0, 3)


def test_a_second_execution_of_a_batch_stores_and_counts_nothing_twice(pipeline: Pipeline, dynamodb: Any) -> None:
    # GIVEN an accepted batch and a second execution of it, as an Express workflow allows (starts are
    # not deduplicated by name): one runs after the other, and one alongside, before the first is done
    accepted = answer(pipeline.invoke("ingest", canned("apigw_http_v2_post_events.json")))
    started = {"batch_id": accepted["batch_id"], "raw_key": f"raw/{accepted['batch_id']}.ndjson"}
    pipeline.sfn.start_execution(
        stateMachineArn=pipeline.state_machine_arn, name=f"{accepted['batch_id']}-again", input=json.dumps(started)
    )
    early = pipeline.invoke("process_batch", started)  # a run that races the first one
    # WHEN Step Functions runs both executions
    assert len(pipeline.drain()) == 2
    # THEN the events are curated once, the batch is done with the same counts, insights count them once
    assert len(curated_ids(dynamodb)) == 3
    batch = answer(pipeline.invoke("ingest", http_event("GET", f"/batches/{accepted['batch_id']}")))
    assert (batch["status"], batch["curated"], batch["duplicates"]) == ("done", 3, 0)
    assert (early["curated"], early["duplicates"]) == (3, 0)
    window = {"since": "2026-11-28T05:30:00Z", "until": "2026-11-28T06:30:00Z"}  # the events' own time
    insights = answer(pipeline.invoke("ingest", http_event("GET", "/insights", query=window)))
    assert insights["totals"]["events"] == 3
    assert pipeline.failed == []


def test_direct_invocation_with_events(pipeline: Pipeline, dynamodb: Any) -> None:
    events = [make_event("signup", properties={"method": "sso"}) for _ in range(3)]
    result = pipeline.invoke("ingest", {"events": events})
    pipeline.drain()
    assert (result["received"], result["rejected"]) == (3, 0)
    assert curated_ids(dynamodb) == {e["event_id"] for e in events}


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({"isBase64Encoded": True, "body": "not base64!"}, 400, id="bad-base64"),
        pytest.param({"body": None}, 400, id="no-body"),
        pytest.param({"body": ""}, 400, id="empty-body"),
        pytest.param({"body": "x" * (1024 * 1024 + 1)}, 413, id="body-over-limit"),
        pytest.param({"headers": {"content-type": "text/csv"}}, 415, id="wrong-content-type"),
        pytest.param({"headers": {"content-type": "application/json", "content-encoding": "br"}}, 415, id="brotli"),
        pytest.param({"body": '{"events": [1, 2'}, 400, id="truncated-json"),
        pytest.param({"body": "[" + ",".join(['{"event_id": "x", "event_type": "y"}'] * 501) + "]"}, 413, id="501"),
    ],
)
def test_bad_requests_get_a_4xx_and_start_nothing(pipeline: Pipeline, change: dict[str, Any], status: int) -> None:
    # GIVEN the canned request, broken in one way
    event = canned("apigw_http_v2_post_events.json")
    event.update(change)
    # WHEN it is ingested
    response = pipeline.invoke("ingest", event)
    # THEN the answer is that 4xx with a message, and no workflow was started
    assert response["statusCode"] == status
    assert answer(response)["message"]
    assert pipeline.drain() == []


def test_gzip_and_base64_body(pipeline: Pipeline, dynamodb: Any) -> None:
    events = [make_event("page_view") for _ in range(4)]
    body = gzip.compress(b"\n".join(orjson.dumps(e) for e in events))
    headers = {"content-type": "application/x-ndjson", "content-encoding": "gzip"}
    event = http_event("POST", "/events", body=base64.b64encode(body).decode(), headers=headers)
    event["isBase64Encoded"] = True
    assert pipeline.invoke("ingest", event)["statusCode"] == 202
    pipeline.drain()
    assert len(curated_ids(dynamodb)) == 4


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("GET", "/events", 405), ("GET", "/batches/unknown", 404), ("GET", "/health", 200)],
)
def test_other_routes(pipeline: Pipeline, method: str, path: str, status: int) -> None:
    assert pipeline.invoke("ingest", http_event(method, path))["statusCode"] == status


@pytest.mark.parametrize(
    "query",
    [
        {"since": "yesterday"},
        {"since": "2026-11-28T07:00:00Z", "until": "2026-11-28T06:00:00Z"},
        {"since": "1970-01-01T00:00:00Z"},
    ],
)
def test_insights_with_a_bad_window_is_400(pipeline: Pipeline, query: dict[str, str]) -> None:
    assert pipeline.invoke("ingest", http_event("GET", "/insights", query=query))["statusCode"] == 400


# --- file drops --------------------------------------------------------------------------------

DROPPED_KEY = "incoming/2026/11/28/clicks batché 1.ndjson"  # what tests/events/s3_put_incoming.json names


def drop(s3: Any, data: bytes, key: str = DROPPED_KEY) -> str:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    version: str = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["VersionId"]
    return version


def s3_notification(version: str) -> dict[str, Any]:
    event = canned("s3_put_incoming.json")
    event["Records"][0]["s3"]["object"]["versionId"] = version
    return event


def eventbridge_notification(version: str) -> dict[str, Any]:
    event = canned("eventbridge_s3_object_created.json")
    event["detail"]["object"]["version-id"] = version
    return event


def ndjson_of(count: int) -> tuple[bytes, set[str]]:
    events = [make_event("page_view") for _ in range(count)]
    return b"\n".join(orjson.dumps(e) for e in events) + b"\n", {e["event_id"] for e in events}


@pytest.mark.parametrize("notification", [s3_notification, eventbridge_notification])
def test_dropped_file_with_spaces_and_unicode_in_its_key(
    pipeline: Pipeline, s3: Any, dynamodb: Any, notification: Any
) -> None:
    # GIVEN a file of 1,200 events under a key with spaces and unicode, URL-encoded in the notification
    data, sent = ndjson_of(1200)
    version = drop(s3, data)
    # WHEN the notification arrives and the executions run
    result = pipeline.invoke("ingest", notification(version))
    executions = pipeline.drain()
    # THEN the file was cut into batches of 500, one execution each, and every event is curated
    assert result["objects"][0] | {"status": "ingested", "received": 1200, "batches": 3} == result["objects"][0]
    assert len(executions) == 3
    assert curated_ids(dynamodb) == sent


@pytest.mark.parametrize("form", ["s3", "eventbridge"])
def test_a_bucket_without_versioning(pipeline: Pipeline, s3: Any, dynamodb: Any, form: str) -> None:
    # GIVEN a file dropped in a bucket without versioning: its notification has an ETag, no version id
    data, sent = ndjson_of(30)
    etag = s3.put_object(Bucket=BUCKET, Key=DROPPED_KEY, Body=data)["ETag"].strip('"')
    if form == "s3":
        event = canned("s3_put_incoming.json")
        found = event["Records"][0]["s3"]["object"]
        del found["versionId"]
        found["eTag"] = etag
    else:
        event = canned("eventbridge_s3_object_created.json")
        del event["detail"]["object"]["version-id"]
        event["detail"]["object"]["etag"] = etag
    # WHEN it is ingested, twice (at-least-once delivery)
    first = pipeline.invoke("ingest", event)
    pipeline.drain()
    pipeline.invoke("ingest", event)
    # THEN the file was read, its events curated, and the repeat started nothing
    assert first["objects"][0]["status"] == "ingested"
    assert pipeline.drain() == []
    assert curated_ids(dynamodb) == sent


def test_a_repeated_notification_processes_nothing_twice(pipeline: Pipeline, s3: Any, dynamodb: Any) -> None:
    data, sent = ndjson_of(20)
    event = s3_notification(drop(s3, data))
    pipeline.invoke("ingest", event)
    pipeline.drain()
    # WHEN the same notification arrives again (S3 delivers at least once)
    again = pipeline.invoke("ingest", event)
    # THEN its batches are found done: no new execution, nothing counted twice
    assert pipeline.drain() == []
    assert again["objects"][0]["curated"] == 20
    assert curated_ids(dynamodb) == sent


def test_missing_object_is_counted_not_retried(pipeline: Pipeline, s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a notification for an object version that no longer exists
    version = drop(s3, b"{}\n")
    s3.delete_object(Bucket=BUCKET, Key=DROPPED_KEY, VersionId=version)
    # WHEN it is ingested, THEN the handler returns normally (no retry) with the object marked missing
    result = pipeline.invoke("ingest", s3_notification(version))
    assert result["objects"][0]["status"] == "missing"
    assert '"FileDropOutcomes"' in capsys.readouterr().out  # and it is counted in the EMF metrics


def test_zero_byte_object(pipeline: Pipeline, s3: Any) -> None:
    result = pipeline.invoke("ingest", s3_notification(drop(s3, b"")))
    assert result["objects"][0] | {"status": "ingested", "received": 0, "batches": 0} == result["objects"][0]
    assert pipeline.drain() == []


def test_gzip_bomb_is_refused_after_its_limit(pipeline: Pipeline, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a file limit of 1 MiB and a gzip file that expands to 64 MiB
    pipeline = load_pipeline(monkeypatch, EVENTPIPE_MAX_FILE_BYTES=str(1024 * 1024))
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))
    # WHEN it is dropped, THEN reading stops at the limit and the outcome says why
    event = s3_notification(drop(s3, bomb, DROPPED_KEY + ".gz"))
    event["Records"][0]["s3"]["object"]["key"] += ".gz"
    result = pipeline.invoke("ingest", event)
    outcome = result["objects"][0]
    assert outcome["status"] == "refused"
    assert "limit" in outcome["error"]


def test_s3_test_event_is_answered_with_no_objects(pipeline: Pipeline) -> None:
    # S3 sends this once when the bucket notification is configured: not an error to retry
    event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-28T06:00:00.000Z", "Bucket": BUCKET}
    assert pipeline.invoke("ingest", event) == {"objects": []}


def test_objects_outside_incoming_are_ignored(pipeline: Pipeline, s3: Any) -> None:
    event = s3_notification(drop(s3, b"{}\n", "raw/someone-elses.ndjson"))
    event["Records"][0]["s3"]["object"]["key"] = "raw/someone-elses.ndjson"
    assert pipeline.invoke("ingest", event)["objects"][0]["status"] == "ignored"


# --- the workflow -------------------------------------------------------------------------------


def test_state_payloads_stay_small_whatever_the_batch(pipeline: Pipeline, s3: Any) -> None:
    # GIVEN a file of 5,000 events of about 1 KB, as 10 batches of 500 (about 500 KB each, over 256 KiB)
    events = [make_event("page_view", properties={"path": "/p/" + "x" * 600}) for _ in range(5000)]
    version = drop(s3, b"\n".join(orjson.dumps(e) for e in events))
    pipeline.invoke("ingest", s3_notification(version))
    # WHEN the executions run, THEN no state input or output comes near Step Functions' limit
    assert len(pipeline.drain()) == 10
    assert max(pipeline.state_sizes) < STATE_LIMIT / 20


def test_a_store_that_keeps_failing_fails_the_batch_and_marks_nothing_done(pipeline: Pipeline, dynamodb: Any) -> None:
    # GIVEN a request accepted while the curated table is gone (every ProcessBatch attempt fails)
    accepted = answer(pipeline.invoke("ingest", canned("apigw_http_v2_post_events.json")))
    dynamodb.delete_table(TableName=CURATED_TABLE)
    waits: list[float] = []
    # WHEN the execution runs
    pipeline.drain(sleep=waits.append)
    # THEN ProcessBatch was retried with backoff, then the batch was marked failed, not done
    assert len(waits) == 4
    batch = answer(pipeline.invoke("ingest", http_event("GET", f"/batches/{accepted['batch_id']}")))
    assert batch["status"] == "failed"


def test_a_pending_batch_whose_execution_closed_is_started_again_by_replay(pipeline: Pipeline, dynamodb: Any) -> None:
    # GIVEN an accepted batch whose execution was stopped before it ran (timed out, aborted)
    accepted = answer(pipeline.invoke("ingest", canned("apigw_http_v2_post_events.json")))
    execution = pipeline.sfn.list_executions(stateMachineArn=pipeline.state_machine_arn)["executions"][0]
    pipeline.sfn.stop_execution(executionArn=execution["executionArn"])
    pipeline.ran.add(execution["name"])
    # WHEN replay runs, THEN it starts the batch under a new name, and the batch ends done
    assert pipeline.invoke("replay", {})["batches"] == 1
    (restarted,) = pipeline.drain()
    assert restarted.startswith(accepted["batch_id"] + "-retry-")
    batch = answer(pipeline.invoke("ingest", http_event("GET", f"/batches/{accepted['batch_id']}")))
    assert (batch["status"], batch["curated"]) == ("done", 3)
    assert len(curated_ids(dynamodb)) == 3


def test_a_batch_whose_workflow_cannot_start_is_acknowledged_and_replayed(pipeline: Pipeline) -> None:
    # GIVEN a state machine that cannot be started (deleted by mistake)
    definition = pipeline.sfn.describe_state_machine(stateMachineArn=pipeline.state_machine_arn)
    pipeline.sfn.delete_state_machine(stateMachineArn=pipeline.state_machine_arn)
    # WHEN a request arrives, THEN it is acknowledged: its raw batch is stored, and it waits as pending
    response = pipeline.invoke("ingest", canned("apigw_http_v2_post_events.json"))
    assert response["statusCode"] == 202
    batch_id = answer(response)["batch_id"]
    assert answer(pipeline.invoke("ingest", http_event("GET", f"/batches/{batch_id}")))["status"] == "pending"
    # AND once the state machine is back, replay starts it and it ends done
    pipeline.sfn.create_state_machine(
        name=definition["name"], definition=definition["definition"], roleArn=definition["roleArn"]
    )
    pipeline.invoke("replay", {})
    assert pipeline.drain() == [batch_id]
    assert answer(pipeline.invoke("ingest", http_event("GET", f"/batches/{batch_id}")))["status"] == "done"


@pytest.fixture
def capture_logs(pipeline: Pipeline) -> Iterator[Callable[[], None]]:
    """Call it in a test to send the Powertools logger to that test's captured stdout (its stream is the
    one of its first import); it goes back to the real stdout after, since capsys closes its own."""
    handler = pipeline.module.logger.registered_handler
    yield lambda: handler.setStream(sys.stdout)
    handler.stream = sys.__stdout__  # not setStream: it would flush the closed one


def test_logs_carry_the_batch_id_and_metrics_are_emf(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], capture_logs: Callable[[], None]
) -> None:
    capture_logs()
    bad = make_event("signup", properties={"method": "carrier-pigeon"})
    accepted = pipeline.invoke("ingest", {"events": [make_event("page_view"), bad]})
    pipeline.drain()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    metrics = [line for line in lines if "_aws" in line]
    rejected = [m for m in metrics if "EventsRejected" in m]
    # the batch's total with the service dimension alone (the ratio alarm); no metric per reason code
    assert [(m.get("reason"), m["EventsRejected"]) for m in rejected] == [(None, [1.0])]
    assert rejected[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert any("EventsCurated" in m for m in metrics)
    assert any(m.get("BatchLatency") is not None for m in metrics)
    # the reasons are in the batch's one log line, with the batch id as correlation id
    logs = [line for line in lines if "level" in line]
    (batch_line,) = [line for line in logs if line["message"] in ("process batch", "mark done", "batch accepted")]
    assert (batch_line["message"], batch_line["correlation_id"]) == ("process batch", accepted["batch_id"])
    assert batch_line["result"]["rejected"] == {"schema_violation": 1}


def test_a_quarantine_replay_counts_no_rejections_again(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a rejected event, counted once in EventsRejected when its batch ran
    pipeline.module.logger.registered_handler.setStream(sys.stdout)
    pipeline.invoke("ingest", {"events": [make_event("signup", properties={"method": "carrier-pigeon"})]})
    pipeline.drain()
    capsys.readouterr()
    # WHEN the quarantine is replayed and the event is rejected again
    assert pipeline.invoke("replay", {"rejected": True})["batches"] == 1
    pipeline.drain()
    # THEN no EventsRejected is emitted: a replay adds no EventsReceived, so the ratio alarm would misfire
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    metrics = [line for line in lines if "_aws" in line]
    assert any("EventsCurated" in m for m in metrics)  # the replay batch did run
    assert not [m for m in metrics if "EventsRejected" in m]


def test_export_writes_the_changed_hours_to_the_analytics_bucket(pipeline: Pipeline, s3: Any) -> None:
    pipeline.invoke("ingest", canned("apigw_http_v2_post_events.json"))
    pipeline.drain()
    # WHEN the scheduled export runs
    answer = pipeline.invoke("export_insights", {})
    # THEN the changed hour's minutes are JSON lines under Hive-style date partitions of the analytics
    # bucket, as Athena reads them, beside the hour's and the day's uniques; nothing went to the raw bucket
    counts = [key for key in answer["keys"] if key.startswith("minute_counts/dt=") and "/hour=" in key]
    assert (answer["hours"], answer["pending"], len(counts)) == (1, 0, 1)
    body = s3.get_object(Bucket=ANALYTICS_BUCKET, Key=counts[0])["Body"]
    assert sum(orjson.loads(line)["events_total"] for line in body.iter_lines()) == 3
    assert {key.split("/")[0] for key in answer["keys"]} == {"minute_counts", "hour_uniques", "day_uniques"}
    assert not [
        item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) if "insights" in item["Key"]
    ]
    # AND the next run has nothing left to export
    assert pipeline.invoke("export_insights", {})["keys"] == []


def test_an_event_of_no_known_shape_is_an_error(pipeline: Pipeline) -> None:
    with pytest.raises(InputError, match="not an API Gateway"):
        pipeline.invoke("ingest", {"hello": "world"})

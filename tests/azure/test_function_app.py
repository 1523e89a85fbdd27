"""The function app's functions, called as the Functions host calls them: with real `azure-functions`
objects, on a runtime whose raw bucket and workflow queue are Azurite's and whose stores are the
local SQLite ones (no Cosmos DB emulator runs here; the ports are the same).
"""

from __future__ import annotations

import base64
import gzip
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import azure.functions as func
import function_app
import orjson
import pytest
from azure.functions.timer import TimerRequest
from azure.storage.blob import ContainerClient
from eventpipe_azure.blob import BlobRawBucket
from eventpipe_azure.queue import QueueWorkflowStarter
from eventpipe_azure.runtime import AzureRuntime

from eventpipe.adapters.local import (
    Database,
    FolderBucket,
    SqliteBatchStore,
    SqliteCuratedStore,
    SqliteInsightsStore,
    SqliteQuarantine,
)
from eventpipe.core.model import BatchRecord, BatchStatus, Limits
from eventpipe.settings import Settings
from tests.azure.conftest import indexed_functions
from tests.conftest import NOW_MS, FixedClock, make_event, ndjson

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from azure.storage.queue import QueueClient

# The functions as the host indexes them: name -> the user code each trigger calls.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    function.get_function_name(): function.get_user_function() for function in indexed_functions()
}


def user_function(name: str) -> Callable[..., Any]:
    return FUNCTIONS[name]


@pytest.fixture
def runtime(tmp_path: Path, container: ContainerClient, queue: QueueClient) -> Iterator[AzureRuntime]:
    db = Database(tmp_path / "eventpipe.db")
    settings = replace(Settings.from_env({}), limits=Limits(max_batch_events=50, max_body_bytes=64 * 1024))
    rt = AzureRuntime(
        settings,
        bucket=BlobRawBucket(container.container_name, container),
        curated=SqliteCuratedStore(db, FolderBucket(tmp_path / "curated", prefixes=())),
        batches=SqliteBatchStore(db),
        quarantine=SqliteQuarantine(db),
        insights=SqliteInsightsStore(db),
        starter=QueueWorkflowStarter(queue.queue_name, queue),
        analytics=FolderBucket(tmp_path / "analytics", prefixes=()),
        clock=FixedClock(),
    )
    function_app.use_runtime(rt)
    yield rt
    function_app.use_runtime(None)
    db.close()


def http(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> func.HttpResponse:
    request = func.HttpRequest(
        method,
        f"https://eventpipe.example/{path}",
        headers=headers or {},
        params={},
        route_params={"path": path.partition("?")[0]},
        body=body,
    )
    response: func.HttpResponse = user_function("http_api")(request)
    return response


def run_queued(queue: QueueClient) -> list[str]:
    """Deliver every queued message to `run_batch`, as the queue trigger does; the batch ids run."""
    ran = []
    for message in queue.receive_messages(messages_per_page=32):
        body = base64.b64decode(message.content)
        user_function("run_batch")(func.QueueMessage(id=message.id, body=body))
        queue.delete_message(message)
        ran.append(orjson.loads(body)["batch_id"])
    return ran


def document(response: func.HttpResponse) -> Any:
    assert response.headers["content-type"] == "application/json"
    return orjson.loads(response.get_body())


# --- HTTP -----------------------------------------------------------------------------------------


def test_post_events_answers_202_and_the_queued_workflow_curates_them(
    runtime: AzureRuntime, queue: QueueClient
) -> None:
    # GIVEN two valid events and one without an event_type
    events = [make_event("page_view"), make_event("purchase"), {"event_id": str(uuid.uuid4())}]
    # WHEN they are posted
    response = http("POST", "events", orjson.dumps(events), {"Content-Type": "application/json"})
    # THEN the answer is 202 with the batch id, and the shape failure reported
    assert response.status_code == 202
    answer = document(response)
    assert answer["received"] == 3
    assert answer["rejected"] == 1
    assert answer["errors"][0]["index"] == 2
    assert answer["errors"][0]["reasons"][0]["code"] == "envelope_invalid"
    batch_id = answer["batch_id"]
    # AND the raw batch is in the container, the batch pending until its queued run
    assert runtime.bucket.get(f"raw/{batch_id}.ndjson").startswith(b'{"v":1')
    assert document(http("GET", f"batches/{batch_id}"))["status"] == "pending"
    assert run_queued(queue) == [batch_id]
    batch = document(http("GET", f"batches/{batch_id}"))
    assert (batch["status"], batch["curated"], batch["rejected"]) == ("done", 2, 1)
    assert runtime.curated.count_by_type() == {"page_view": 1, "purchase": 1}
    # AND a repeated message runs nothing twice
    runtime.ingestor.starter.start(batch_id, f"raw/{batch_id}.ndjson")
    assert run_queued(queue) == [batch_id]
    assert runtime.curated.count() == 2


def test_gzip_ndjson_is_accepted(runtime: AzureRuntime, queue: QueueClient) -> None:
    body = gzip.compress(ndjson(make_event(), make_event("signup")))
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    response = http("POST", "events", body, headers)
    assert response.status_code == 202
    assert document(response)["received"] == 2


def test_malformed_json_is_400(runtime: AzureRuntime, queue: QueueClient) -> None:
    response = http("POST", "events", b'{"event_id": ', {"Content-Type": "application/json"})
    assert response.status_code == 400
    assert document(response)["error"] == "bad_request"
    assert list(runtime.bucket.keys("raw/")) == []  # nothing stored, nothing queued
    assert queue.peek_messages() == []


def test_body_over_the_limit_is_413(runtime: AzureRuntime) -> None:
    # GIVEN a body one byte over the configured 64 KiB
    event = make_event(properties={"path": "/" + "x" * (64 * 1024)})
    response = http("POST", "events", orjson.dumps(event), {"Content-Type": "application/json"})
    assert response.status_code == 413
    assert document(response)["error"] == "too_large"


def test_unsupported_media_type_is_415(runtime: AzureRuntime) -> None:
    response = http("POST", "events", b"<event/>", {"Content-Type": "application/xml"})
    assert response.status_code == 415


def test_routes_and_methods(runtime: AzureRuntime) -> None:
    assert http("GET", "health").status_code == 200
    assert document(http("GET", "health"))["status"] == "ok"
    assert http("GET", "batches/h-unknown").status_code == 404
    assert http("GET", "nowhere").status_code == 404
    response = http("GET", "events")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_insights_after_a_batch(runtime: AzureRuntime, queue: QueueClient) -> None:
    http("POST", "events", orjson.dumps([make_event("page_view"), make_event("purchase")]))
    run_queued(queue)
    insights = document(http("GET", "insights?since=2026-11-28T05:00:00Z&until=2026-11-28T06:00:00Z"))
    # The handler reads the query string from the request URL, as API Gateway passes it on.
    assert insights["totals"]["events"] == 2
    assert insights["totals"]["by_type"] == {"page_view": 1, "purchase": 1}


def test_storage_down_is_503_never_500(tmp_path: Path, runtime: AzureRuntime) -> None:
    # GIVEN a raw bucket whose service does not answer
    from tests.azure.conftest import _free_port

    dead = ContainerClient(f"http://127.0.0.1:{_free_port()}/devstoreaccount1", "raw", retry_total=0)
    function_app.use_runtime(replace_bucket(runtime, BlobRawBucket("raw", dead)))
    # WHEN events are posted
    response = http("POST", "events", orjson.dumps(make_event()), {"Content-Type": "application/json"})
    # THEN the client is told to retry
    assert response.status_code == 503
    assert document(response)["error"] == "unavailable"


def replace_bucket(runtime: AzureRuntime, bucket: BlobRawBucket) -> AzureRuntime:
    return AzureRuntime(
        runtime.settings,
        bucket=bucket,
        curated=runtime.curated,
        batches=runtime.batches,
        quarantine=runtime.quarantine,
        insights=runtime.insights,
        starter=runtime.ingestor.starter,
        clock=runtime.clock,
    )


# --- Event Hubs -----------------------------------------------------------------------------------


def hub_events(bodies: list[bytes], *, partition: str = "0", first_sequence: int = 100) -> list[func.EventHubEvent]:
    """A delivered batch as the host decodes it for `cardinality="many"`: shared trigger metadata."""
    metadata = {"PartitionContext": func.meta.Datum(orjson.dumps({"PartitionId": partition}).decode(), "json")}
    return [
        func.EventHubEvent(
            body=body,
            trigger_metadata=metadata,
            sequence_number=first_sequence + number,
            offset=str(4096 * number),
            enqueued_time=datetime.fromtimestamp(NOW_MS / 1000, UTC),
        )
        for number, body in enumerate(bodies)
    ]


def test_event_hub_batch_is_ingested_and_curated(runtime: AzureRuntime, queue: QueueClient) -> None:
    # GIVEN 120 events (three raw batches of at most 50), one of them pretty-printed, one not JSON
    events = [make_event() for _ in range(118)]
    bodies = [orjson.dumps(e) for e in events]
    bodies.append(orjson.dumps(make_event("signup"), option=orjson.OPT_INDENT_2))
    bodies.append(b"{not json")
    # WHEN the Event Hub trigger delivers them
    user_function("ingest_event_hub")(hub_events(bodies))
    # THEN three batches are stored and queued, and their runs curate 119 events and reject one
    assert len(list(runtime.bucket.keys("raw/"))) == 3
    ran = run_queued(queue)
    assert len(ran) == 3
    assert runtime.curated.count() == 119
    records = [runtime.batches.get(batch_id) for batch_id in ran]
    assert all(r is not None and r.status is BatchStatus.DONE for r in records)
    assert sum(r.rejected_by_code.get("malformed_json", 0) for r in records if r) == 1


def test_event_hub_redelivery_counts_nothing_twice(runtime: AzureRuntime, queue: QueueClient) -> None:
    bodies = [orjson.dumps(make_event()) for _ in range(10)]
    user_function("ingest_event_hub")(hub_events(bodies))
    first = run_queued(queue)
    # WHEN the host delivers the same range again (it crashed before its checkpoint)
    user_function("ingest_event_hub")(hub_events(bodies))
    # THEN the batch is recognised as done: nothing new is stored or queued
    assert run_queued(queue) == []
    assert len(list(runtime.bucket.keys("raw/"))) == len(first) == 1
    assert runtime.curated.count() == 10
    # AND the same sequence numbers on another partition are other events, another batch
    user_function("ingest_event_hub")(hub_events([orjson.dumps(make_event())], partition="1"))
    assert len(run_queued(queue)) == 1
    assert runtime.curated.count() == 11


def test_event_over_the_size_limit_is_quarantined(runtime: AzureRuntime, queue: QueueClient) -> None:
    big = orjson.dumps(make_event(properties={"path": "/" + "x" * 70_000}))
    user_function("ingest_event_hub")(hub_events([big, orjson.dumps(make_event())]))
    (batch_id,) = run_queued(queue)
    (rejection,) = runtime.quarantine.for_batch(batch_id)
    assert rejection.reasons[0].code == "too_large"
    assert rejection.index == 0
    assert runtime.curated.count() == 1


# --- Event Grid (files dropped under incoming/) ---------------------------------------------------


def blob_created(container: str, name: str, etag: str) -> func.EventGridEvent:
    return func.EventGridEvent(
        id=str(uuid.uuid4()),
        data={
            "api": "PutBlob",
            "eTag": etag,
            "blobType": "BlockBlob",
            "url": f"https://acct.example/{container}/{name}",
        },
        topic="/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/acct",
        subject=f"/blobServices/default/containers/{container}/blobs/{name}",
        event_type="Microsoft.Storage.BlobCreated",
        event_time=datetime.fromtimestamp(NOW_MS / 1000, UTC),
        data_version="",
    )


def test_dropped_file_is_ingested_once(runtime: AzureRuntime, container: ContainerClient, queue: QueueClient) -> None:
    # GIVEN an NDJSON file of 60 events written under incoming/
    blob = container.upload_blob("incoming/day 1.ndjson", ndjson(*[make_event() for _ in range(60)]))
    event = blob_created(container.container_name, "incoming/day 1.ndjson", blob.get_blob_properties().etag)
    # WHEN Event Grid tells the function, twice (its delivery is at least once)
    user_function("ingest_drop")(event)
    user_function("ingest_drop")(event)
    # THEN two batches were queued (50 + 10) for the first notice; the second found them stored
    ran = run_queued(queue)
    assert len(set(ran)) == 2
    assert runtime.curated.count() == 60
    # AND a blob of another container, or outside incoming/, is ignored
    user_function("ingest_drop")(blob_created("elsewhere", "incoming/x.ndjson", "0x1"))
    user_function("ingest_drop")(blob_created(container.container_name, "raw/x.ndjson", "0x1"))
    assert run_queued(queue) == []


# --- Recovery -------------------------------------------------------------------------------------


def test_restart_stale_queues_old_pending_batches_only(runtime: AzureRuntime, queue: QueueClient) -> None:
    for batch_id, age_ms in (("h-old", 11 * 60_000), ("h-new", 60_000)):
        runtime.batches.create(BatchRecord(batch_id, f"raw/{batch_id}.ndjson", "http", NOW_MS - age_ms, 1))
    user_function("restart_stale")(TimerRequest(past_due=False))
    messages = [orjson.loads(base64.b64decode(m.content)) for m in queue.receive_messages(messages_per_page=10)]
    assert [m["batch_id"] for m in messages] == ["h-old"]


# --- Export for Power BI --------------------------------------------------------------------------


def test_export_writes_the_insights_hours_to_the_container(runtime: AzureRuntime, queue: QueueClient) -> None:
    http("POST", "events", orjson.dumps([make_event("page_view"), make_event("purchase")]))
    run_queued(queue)
    user_function("export_insights")(TimerRequest(past_due=False))
    (key,) = runtime.analytics.keys("minute_counts/")
    lines = [orjson.loads(line) for line in runtime.analytics.get(key).splitlines()]
    assert sum(sum(line["events"].values()) for line in lines) == 2

"""eventpipe on Azure Functions (Python v2 programming model): the entry points the host indexes.

Each function is a few lines: read the trigger's input, call one use-case, map the result.

- `http_api`: the HTTP API of docs/http-api.md (POST /events, GET /batches/{id},
  GET /insights, GET /health), answered by the same handler as API Gateway in AWS.
- `ingest_event_hub`: the high-volume path, batches of Event Hubs messages (one event each).
- `ingest_drop`: files written under `incoming/` of the raw container (Event Grid BlobCreated).
- `run_batch`: the workflow (pipeline.asl.json, run in-process) for each queued batch.
- `restart_stale`: every 10 minutes, queue again the batches left pending (a lost message).
- `export_insights`: every 5 minutes, the hours of insights changed since the last export, as
  JSON lines in the analytics container, for Power BI (as the S3 export feeds Athena and QuickSight).

The runtime is built at the first invocation from the app settings (main.bicep sets them); tests
hand in their own with `use_runtime`.
"""

import logging
import os

import azure.functions as func
from eventpipe_azure.queue import BatchMessage
from eventpipe_azure.runtime import AzureRuntime
from eventpipe_azure.triggers import api_gateway_event, blob_drop, http_response, ingest_event_hub

from eventpipe.handlers.drops import ingest_drop as ingest_object
from eventpipe.handlers.export import handle_export
from eventpipe.handlers.http_api import handle_http

log = logging.getLogger("eventpipe.azure")
STALE_AFTER_MS = 10 * 60 * 1000  # a batch's run takes seconds; ten minutes pending means lost

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
_runtime: AzureRuntime | None = None


def runtime() -> AzureRuntime:
    """The instance's runtime, built once (clients and their connection pools are reused)."""
    global _runtime
    if _runtime is None:
        _runtime = AzureRuntime.from_env()
    return _runtime


def use_runtime(value: AzureRuntime | None) -> None:
    """Run the functions on `value` (tests), or on the app settings' resources again (None)."""
    global _runtime
    _runtime = value


@app.function_name("http_api")
@app.route(route="{*path}", methods=["GET", "POST"])
def http_api(req: func.HttpRequest) -> func.HttpResponse:
    return http_response(handle_http(api_gateway_event(req), runtime()))


@app.function_name("ingest_event_hub")
@app.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%EVENTPIPE_EVENT_HUB%",
    connection="EventHubConnection",
    cardinality="many",
    consumer_group="eventpipe",
)
# Without a retry policy a failed batch is skipped: the host checkpoints past it all the same.
@app.retry(
    strategy="exponential_backoff", max_retry_count="8", minimum_interval="00:00:02", maximum_interval="00:05:00"
)
def ingest_event_hub_batch(events: list[func.EventHubEvent]) -> None:
    summary = ingest_event_hub(events, runtime(), hub=os.environ.get("EVENTPIPE_EVENT_HUB", "events"))
    log.info("event hub batch: %s in %d batches", summary.as_dict(), summary.batches)


@app.function_name("ingest_drop")
@app.event_grid_trigger(arg_name="event")
def ingest_drop(event: func.EventGridEvent) -> None:
    drop = blob_drop(event)
    if drop is None:
        log.info("ignored event %s of type %s", event.id, event.event_type)
        return
    log.info("drop: %s", ingest_object(drop, runtime()).as_dict())


@app.function_name("run_batch")
@app.queue_trigger(arg_name="message", queue_name="%EVENTPIPE_WORKFLOW_QUEUE%", connection="WorkflowQueue")
def run_batch(message: func.QueueMessage) -> None:
    batch = BatchMessage.decode(message.get_body())
    status = runtime().run_batch(batch)
    log.info("batch %s: %s", batch.batch_id, status)


@app.function_name("restart_stale")
@app.timer_trigger(arg_name="timer", schedule="0 */10 * * * *")
def restart_stale(timer: func.TimerRequest) -> None:
    restarted = runtime().restart_stale(older_than_ms=STALE_AFTER_MS)
    if restarted:
        log.warning("queued %d stale pending batches again: %s", len(restarted), restarted[:20])


@app.function_name("export_insights")
@app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
def export_insights(timer: func.TimerRequest) -> None:
    log.info("exported %d insights objects", len(handle_export({}, runtime())["keys"]))

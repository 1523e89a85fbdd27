"""The edge: turn what the Functions host hands a function into what eventpipe's handlers take, and back.

- HTTP: a `func.HttpRequest` becomes the API Gateway HTTP API (2.0) event that the local server
  builds too (eventpipe.localrun.apigw), so `eventpipe.handlers.http_api` answers it unchanged.
- Event Hubs: a batch of messages, one event each, becomes raw batches through the same `Ingestor`
  as a dropped file, with batch ids that name the delivered range.
- Event Grid: a `Microsoft.Storage.BlobCreated` event becomes the `ObjectDrop` that an S3
  notification becomes in AWS, for eventpipe.handlers.drops.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import azure.functions as func

from eventpipe.core.batch_ids import source_batch_ids
from eventpipe.core.ingest import IngestSummary
from eventpipe.core.readers import KEPT_PREFIX_BYTES, Line
from eventpipe.handlers.drops import ObjectDrop
from eventpipe.localrun.apigw import http_api_event, proxy_response

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from eventpipe.handlers.services import Services

BLOB_CREATED = "Microsoft.Storage.BlobCreated"


# --- HTTP -----------------------------------------------------------------------------------------


def api_gateway_event(req: func.HttpRequest) -> dict[str, Any]:
    """The API Gateway 2.0 event for this request. The path is the `{*path}` route parameter, so the
    host's route prefix (`api/` unless host.json clears it) never reaches the handler."""
    url = urlsplit(req.url)
    path = req.route_params.get("path")
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in req.headers.items()]
    return http_api_event(
        method=req.method.upper(),
        path=f"/{path}" if path is not None else url.path or "/",
        query_string=url.query.encode("latin-1"),
        headers=headers,
        body=req.get_body() or b"",
        source_ip=_client_ip(req.headers.get("x-forwarded-for", "")),
    )


def _client_ip(forwarded: str) -> str:
    """The first address of X-Forwarded-For, which the Functions front end sets, without its port."""
    first = forwarded.split(",")[0].strip()
    if first.startswith("["):  # [IPv6]:port
        return first[1:].partition("]")[0]
    return first.partition(":")[0] if first.count(":") == 1 else first


def http_response(result: Mapping[str, Any]) -> func.HttpResponse:
    status, headers, body = proxy_response(result)
    joined: dict[str, str] = {}
    for name, value in headers:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        joined[key] = f"{joined[key]}, {text}" if key in joined else text
    return func.HttpResponse(body, status_code=status, headers=joined)


# --- Event Hubs -----------------------------------------------------------------------------------


def ingest_event_hub(events: Sequence[func.EventHubEvent], services: Services, *, hub: str) -> IngestSummary:
    """Ingest one delivered batch of Event Hubs messages, each message one event.

    The batch ids name the delivered range (partition, sequence numbers, a digest of the bodies):
    the same delivery again, after a crash before the host's checkpoint, finds its batches stored
    and finishes them instead of counting twice. A redelivery cut differently gives other batch
    ids; its events are then counted as duplicates of the first delivery's, never curated twice.
    """
    limits = services.settings.limits
    lines = [_line(position, event.get_body(), limits.max_event_bytes) for position, event in enumerate(events)]
    summary = IngestSummary()
    if not lines:
        return summary
    batch_ids = source_batch_ids(_delivery(hub, events), limits.max_batch_events)
    for record in services.ingestor.ingest(lines, source=f"eventhub:{hub}", batch_id_for=batch_ids):
        summary.add(record)
    return summary


def _line(position: int, body: bytes, max_event_bytes: int) -> Line:
    if len(body) > max_event_bytes:
        return Line(position, None, body[:KEPT_PREFIX_BYTES])
    # A raw batch holds one event a line; a newline is JSON whitespace between tokens.
    return Line(position, body.replace(b"\r", b" ").replace(b"\n", b" "))


def _delivery(hub: str, events: Sequence[func.EventHubEvent]) -> str:
    metadata = events[0].metadata or {}
    context = metadata.get("PartitionContext")
    partition = context.get("PartitionId") if isinstance(context, dict) else None
    digest = hashlib.sha256()
    for event in events:
        body = event.get_body()
        digest.update(len(body).to_bytes(8, "big") + body)
    sequence = f"{events[0].sequence_number}-{events[-1].sequence_number}"
    return f"eventhub:{hub}:{partition}:{sequence}:{digest.hexdigest()}"


# --- Event Grid (blob created) --------------------------------------------------------------------


def blob_drop(event: func.EventGridEvent) -> ObjectDrop | None:
    """The blob a BlobCreated event names, or None for any other event.

    The subject reads `/blobServices/default/containers/<container>/blobs/<name>`; the ETag tells
    the contents of one name apart, as for an S3 bucket without versioning.
    """
    if event.event_type != BLOB_CREATED:
        return None
    _, found, rest = event.subject.partition("/containers/")
    container, found_blobs, name = rest.partition("/blobs/")
    if not found or not found_blobs or not name:
        return None
    data = event.get_json() or {}
    return ObjectDrop(container, name, None, data.get("eTag") or None)

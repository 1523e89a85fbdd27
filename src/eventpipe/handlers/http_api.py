"""The HTTP API (docs/http-api.md) over API Gateway proxy events, version 2.0 and 1.0.

Bad input is answered with a 4xx and a message that says what to change; a failing store with
503, so clients retry. Nothing a client sends can produce a 500.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.batch_ids import is_batch_id, queued_id_facts
from eventpipe.core.errors import BusyError, InputError, StorageError
from eventpipe.core.model import BatchStatus
from eventpipe.core.readers import InputTooLargeError
from eventpipe.core.requests import UnsupportedMediaTypeError, request_lines
from eventpipe.core.timeutil import INSIGHTS_DEFAULT_WINDOW_MS, INSIGHTS_LONGER, INSIGHTS_MAX_WINDOW_MS, parse_window
from eventpipe.handlers.edge import PREFLIGHT_HEADERS, cors_headers, request_facts, write_key_app
from eventpipe.handlers.grouped import grouped_request_document
from eventpipe.handlers.http_error import HttpError, error_document
from eventpipe.handlers.http_request import HttpRequest
from eventpipe.handlers.tracker import is_tracker_request, tracker_response

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.core.documents import AcceptedDocument, BatchDocument, EventError, InsightsDocument, Refusal
    from eventpipe.handlers.http_request import ProxyResponse
    from eventpipe.handlers.services import Services

log = logging.getLogger(__name__)
DEFAULT_WINDOW_MS = INSIGHTS_DEFAULT_WINDOW_MS
MAX_WINDOW_MS = INSIGHTS_MAX_WINDOW_MS  # see core/timeutil.py: longer spans are for the export
# A queued request (AWS micro-batching) is listed in the request index when its group is formed, a
# few seconds later; until then its id alone says it is pending. Past this age an unknown id is just unknown.
QUEUED_PENDING_MS = 15 * 60 * 1000
UNAVAILABLE = error_document("unavailable", "storage is unavailable; retry later")


def is_http_event(event: Mapping[str, Any]) -> bool:
    return "requestContext" in event and ("httpMethod" in event or "rawPath" in event)


def handle_http(event: Mapping[str, Any], services: Services) -> ProxyResponse:
    """Answer one API Gateway proxy event with a proxy response (`statusCode`, `headers`, `body`)."""
    try:
        request = request_of(event)
    except HttpError as exc:
        return _response(None, exc.status, exc.document(), exc.headers)
    return handle_request(request, services)


def handle_request(request: HttpRequest, services: Services) -> ProxyResponse:
    """`handle_http` for a request read from its event already (or never in one: `eventpipe up`'s
    `POST /events` on its loop)."""
    headers: dict[str, str] = {}
    document: Mapping[str, object]
    try:
        if is_tracker_request(request.method, request.path):
            return tracker_response()
        status, document = route(request, services)
    except HttpError as exc:
        status, document = exc.status, exc.document()
        headers.update(exc.headers)
    except BusyError as exc:  # processing is behind: the client sends again later
        status, document = 429, error_document("busy", str(exc))
        headers["retry-after"] = str(exc.retry_after_s)
    except StorageError as exc:
        log.error("storage failed: %s", exc)
        status, document = 503, UNAVAILABLE
    return _response(request, status, document, headers)


def storage_failed(request: HttpRequest) -> ProxyResponse:
    """The answer to `request` when storing it failed after all (`eventpipe up` learns it once the
    request log's write is over): the same 503 as a `StorageError` in `handle_request`."""
    log.error("storage failed: the request log could not be written")
    return _response(request, 503, UNAVAILABLE, {})


def _response(
    request: HttpRequest | None, status: int, document: Mapping[str, object], extra: Mapping[str, str]
) -> ProxyResponse:
    headers = {"content-type": "application/json", **extra}
    if request is not None and _is_events_path(request.path):
        headers.update(cors_headers(request))  # errors too, so a page's script can read why
    if status == 204:  # the preflight: no body
        del headers["content-type"]
        headers.update(PREFLIGHT_HEADERS)
        body = ""
    else:
        body = orjson.dumps(document).decode()
    return {"statusCode": status, "headers": headers, "body": body, "isBase64Encoded": False}


def request_of(event: Mapping[str, Any]) -> HttpRequest:
    """The request in an API Gateway event of either payload version, body decoded."""
    method, path, stage = _method_path_stage(event)
    if stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    return HttpRequest(method.upper(), path, headers, query, _body(event), _source_ip(event))


def _method_path_stage(event: Mapping[str, Any]) -> tuple[str, str, str]:
    """The method, path and stage of an API Gateway proxy event, payload version 2.0 or 1.0.

    Read here, not with Powertools' event classes: importing its data_classes package loads every
    event type it knows, about 10 ms of the ingest function's cold start.
    """
    context = event.get("requestContext")
    context = context if isinstance(context, dict) else {}
    if event.get("version") == "2.0" or "rawPath" in event:
        http = context.get("http")
        method = http.get("method") if isinstance(http, dict) else None
        path, stage = event.get("rawPath"), context.get("stage", "$default")
    else:
        method, path, stage = event.get("httpMethod"), event.get("path"), "$default"  # a REST API's path has no stage
    if not (isinstance(method, str) and isinstance(path, str) and isinstance(stage, str)):
        raise HttpError(400, "bad_request", "not an API Gateway proxy event: its method, path or stage is missing")
    return method, path, stage


def _source_ip(event: Mapping[str, Any]) -> str | None:
    """`requestContext.http.sourceIp` (HTTP API) or `requestContext.identity.sourceIp` (REST API)."""
    context = event.get("requestContext")
    if not isinstance(context, dict):
        return None
    for holder in (context.get("http"), context.get("identity")):
        if isinstance(holder, dict) and isinstance(holder.get("sourceIp"), str):
            return str(holder["sourceIp"])
    return None


def _body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise HttpError(400, "bad_request", "the event's body must be a string")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "bad_request", "isBase64Encoded is true but the body is not base64") from None
    return body.encode("utf-8", "surrogatepass")


def route(request: HttpRequest, services: Services) -> tuple[int, Mapping[str, object]]:
    parts = request.path.rstrip("/").split("/")
    if parts == ["", "events"]:
        if request.method == "OPTIONS":  # a browser's CORS preflight
            return 204, {}
        _allow(request, "POST")
        return 202, post_events(request, services)
    if len(parts) == 3 and parts[1] == "batches" and parts[2]:
        _allow(request, "GET")
        return 200, get_batch(parts[2], services)
    if parts == ["", "insights"]:
        _allow(request, "GET")
        return 200, get_insights(request.query, services)
    if parts == ["", "health"]:
        _allow(request, "GET")
        return 200, {"status": "ok", **services.health()}
    routes = "POST /events, GET /batches/{id}, GET /insights, GET /health, GET /tracker.js"
    raise HttpError(404, "not_found", f"no route {request.path}: {routes}")


def _is_events_path(path: str) -> bool:
    return path.rstrip("/") == "/events"


def _allow(request: HttpRequest, method: str) -> None:
    if request.method != method:
        raise HttpError(405, "method_not_allowed", f"{request.path} answers {method} only", {"allow": method})


def post_events(request: HttpRequest, services: Services, *, invoked: bool = False) -> AcceptedDocument:
    """Check the request's write key, store it as one raw batch and start its workflow: the 202 answer.

    `invoked`: a direct invocation (`{"events": [...]}`), which IAM (or this machine) authorized: no
    write key is asked for, and the events keep the `app_id` they carry.
    """
    limits = services.settings.limits
    app = None if invoked else write_key_app(request, services.apps)
    try:
        lines = request_lines(
            request.body,
            content_type=request.headers.get("content-type"),
            content_encoding=request.headers.get("content-encoding"),
            limits=limits,
        )
        record, refused = services.ingestor.submit_request(lines, source="http", request=request_facts(request, app))
    except UnsupportedMediaTypeError as exc:
        raise HttpError(415, "unsupported_media_type", str(exc)) from exc
    except InputTooLargeError as exc:
        raise HttpError(413, "too_large", str(exc)) from exc
    except InputError as exc:
        raise HttpError(400, "bad_request", str(exc)) from exc
    return {
        "batch_id": record.batch_id,
        "received": record.received,
        "rejected": len(refused),
        "errors": [_error(r) for r in refused],
    }


def _error(refused: Refusal) -> EventError:
    """One refusal of the 202: `index` is the event's 0-based position in the body, `line` its NDJSON line."""
    error: EventError = {"index": refused["index"], "event_id": refused.get("event_id"), "reasons": refused["reasons"]}
    if "line" in refused:
        error["line"] = refused["line"]
    return error


def get_batch(batch_id: str, services: Services) -> BatchDocument:
    if not is_batch_id(batch_id):  # no store is asked about an id no batch can have
        raise HttpError(404, "not_found", "no such batch")
    record = services.batches.get(batch_id)
    queued = queued_id_facts(batch_id) if record is None else None
    if queued is not None and services.request_index is not None:  # a queued request: its group's index
        indexed = services.request_index.find(batch_id)
        if indexed is not None:
            record = indexed.record(raw_key="")
    if record is not None and record.status is BatchStatus.GROUPED:
        grouped = grouped_request_document(record, services)
        if grouped is not None:
            return grouped
        if queued is not None:  # listed, but its group is not recorded yet: a moment away
            record = None
    if record is None and queued is not None:
        received_at_ms, received = queued
        if services.clock.now_ms() - received_at_ms < QUEUED_PENDING_MS:  # not grouped yet: still in the stream
            return {
                "batch_id": batch_id,
                "status": "pending",
                "received": received,
                "curated": 0,
                "duplicates": 0,
                "rejected": 0,
                "rejections": [],
            }
    if record is None:
        raise HttpError(404, "not_found", f"no batch {batch_id}")
    return {
        "batch_id": record.batch_id,
        "status": str(record.status),
        "received": record.received,
        "curated": record.curated,
        "duplicates": record.duplicates,
        "rejected": record.rejected,
        "rejections": [
            {"index": r.index, "event_id": r.event_id, "reasons": [x.as_dict() for x in r.reasons]}
            for r in services.quarantine.for_batch(batch_id)
        ],
    }


def get_insights(query: Mapping[str, str], services: Services) -> InsightsDocument:
    from eventpipe.core.insights import insights_document  # loads the sketches only where insights are read
    from eventpipe.core.segments import view_of

    try:
        view = view_of(query.get("app_id"), query.get("include_bots"))
    except ValueError as exc:
        raise HttpError(400, "bad_request", str(exc)) from None
    try:
        since_ms, until_ms = parse_window(
            query.get("since"),
            query.get("until"),
            now_ms=services.clock.now_ms(),
            default_ms=DEFAULT_WINDOW_MS,
            max_ms=MAX_WINDOW_MS,
            longer=INSIGHTS_LONGER,
        )
    except ValueError as exc:  # the message says which rule the window broke
        raise HttpError(400, "bad_request", str(exc)) from None
    currency = services.settings.enrichment.base_currency
    return insights_document(services.insights, since_ms=since_ms, until_ms=until_ms, currency=currency, view=view)

"""The ingest function: one entry point for HTTP requests, file drops and direct invocations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from eventpipe.core.errors import InputError
from eventpipe.handlers.http_api import handle_http, is_http_event, post_events
from eventpipe.handlers.http_error import HttpError
from eventpipe.handlers.http_request import HttpRequest

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eventpipe.core.documents import AcceptedDocument, DropsAnswer, RangesAnswer
    from eventpipe.handlers.http_request import ProxyResponse
    from eventpipe.handlers.services import Services

    IngestAnswer = ProxyResponse | DropsAnswer | RangesAnswer | AcceptedDocument


def handle_ingest(event: Mapping[str, Any], services: Services) -> IngestAnswer:
    """Route by the event's shape.

    - API Gateway (HTTP API v2 or REST v1 proxy): a proxy response;
    - S3 notification or EventBridge "Object Created": `{"objects": [outcome, ...]}`;
    - direct invocation `{"events": [...]}`: the 202 document of `POST /events`, or `InputError`;
    - `{"file_range": {...}}`, one byte range of a large file (AWS): `{"ranges": [outcome]}`.
    """
    if is_http_event(event):
        return handle_http(event, services)
    # Imported past the HTTP case: a container that serves requests never loads the file paths (3 ms).
    from eventpipe.handlers.drops import drops_of, ingest_drop, is_drop_event
    from eventpipe.handlers.file_ranges import handle_range_event, is_range_event

    splitter = services.file_splitter
    if splitter is not None and is_range_event(event):
        return handle_range_event(event, services, splitter)
    if is_drop_event(event):
        return {"objects": [ingest_drop(drop, services).as_dict() for drop in drops_of(event)]}
    if isinstance(event.get("events"), list):
        body = orjson.dumps({"events": event["events"]})
        request = HttpRequest("POST", "/events", {"content-type": "application/json"}, {}, body)
        try:
            return post_events(request, services, invoked=True)
        except HttpError as exc:
            raise InputError(f"{exc.code}: {exc}") from exc
    raise InputError('not an API Gateway, S3 or EventBridge event, nor {"events": [...]}')

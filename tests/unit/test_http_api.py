"""The HTTP API handler (handlers/http_api.py) and the file-drop handler (handlers/drops.py) on the local
runtime, which provides the same services as the AWS one, driven by API Gateway's and S3's own event shapes."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from eventpipe.core.errors import ObjectNotFoundError, StorageError
from eventpipe.core.model import BatchRecord
from eventpipe.core.timeutil import seconds_iso, to_iso
from eventpipe.handlers.drops import ObjectDrop, drops_of, ingest_drop, is_drop_event
from eventpipe.handlers.http_api import MAX_WINDOW_MS, handle_http, is_http_event, request_of
from tests.conftest import NOW_MS, make_event, ndjson

if TYPE_CHECKING:
    from eventpipe.localrun.runtime import LocalRuntime

EVENTS = Path(__file__).parents[1] / "events"
BATCH_KEYS = {"batch_id", "status", "received", "curated", "duplicates", "rejected", "rejections"}
ITEM_KEYS = {"index", "event_id", "reasons"}
REASON_KEYS = {"code", "path", "message"}
INSIGHTS_KEYS = {"since", "until", "currency", "totals", "funnel", "lag_ms", "minutes"}


def canned(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def v2(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    stage: str = "$default",
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event, from the canned POST /events one."""
    event = canned("apigw_http_v2_post_events.json")
    event.update(rawPath=path, routeKey=f"{method} {path}", body=body, isBase64Encoded=False)
    event["headers"] = headers if headers is not None else {"content-type": "application/json"}
    event["queryStringParameters"] = query
    event["requestContext"]["http"].update(method=method, path=path)
    event["requestContext"]["stage"] = stage
    return event


def v1(method: str, path: str, *, body: str | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A REST API (payload 1.0) event, from the canned POST /events one."""
    event = canned("apigw_rest_v1_post_events.json")
    event.update(path=path, resource=path, httpMethod=method, body=body)
    if headers is not None:
        event["headers"] = headers
        event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    event["requestContext"].update(httpMethod=method, path=f"/prod{path}", resourcePath=path)
    return event


def call(runtime: LocalRuntime, event: dict[str, Any]) -> tuple[int, Any]:
    """Answer `event`; every answer is a JSON proxy response, and an error says what and why."""
    response = handle_http(event, runtime)
    assert response["headers"]["content-type"] == "application/json"
    assert response["isBase64Encoded"] is False
    document = orjson.loads(response["body"])
    if response["statusCode"] >= 400:
        assert set(document) == {"error", "message"}
        assert document["error"]
        assert document["message"]
    return response["statusCode"], document


def post(runtime: LocalRuntime, body: bytes, content_type: str = "application/x-ndjson") -> tuple[int, Any]:
    return call(runtime, v2("POST", "/events", body=body.decode(), headers={"content-type": content_type}))


# --- request_of ------------------------------------------------------------------------------------------


def test_request_of_an_http_api_v2_event() -> None:
    # GIVEN the canned HTTP API event
    event = canned("apigw_http_v2_post_events.json")
    # WHEN it is read
    request = request_of(event)
    # THEN the method, path, headers (names in lower case), query and body are the event's
    assert (request.method, request.path) == ("POST", "/events")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["header1"] == "value1"
    assert dict(request.query) == {"parameter1": "value1,value2", "parameter2": "value"}
    assert request.body == event["body"].encode()
    assert is_http_event(event)


def test_request_of_a_rest_api_v1_event() -> None:
    # GIVEN the canned REST API event: headers in mixed case, the stage only in requestContext.path
    event = canned("apigw_rest_v1_post_events.json")
    request = request_of(event)
    # THEN the path has no stage, every header name is lower case, and the body is the event's
    assert (request.method, request.path) == ("POST", "/events")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-forwarded-proto"] == "https"
    assert all(name == name.lower() for name in request.headers)
    assert dict(request.query) == {"foo": "bar"}
    assert orjson.loads(request.body)["events"][0]["event_type"] == "signup"
    assert is_http_event(event)


def test_a_v1_event_without_headers_or_query() -> None:
    event = v1("GET", "/health")
    event.update(headers=None, multiValueHeaders=None, queryStringParameters=None)
    request = request_of(event)
    assert (request.method, request.path, dict(request.headers), dict(request.query), request.body) == (
        "GET",
        "/health",
        {},
        {},
        b"",
    )


@pytest.mark.parametrize(
    "event",
    [
        {"version": "2.0", "rawPath": "/events", "requestContext": {"stage": "$default"}},  # no http.method
        {"version": "2.0", "rawPath": "/events", "requestContext": {"http": "POST"}},
        {"version": "2.0", "rawPath": None, "requestContext": {"http": {"method": "POST"}}},
        {"version": "2.0", "rawPath": "/events", "requestContext": {"http": {"method": 1}, "stage": "$default"}},
        {"httpMethod": "POST", "requestContext": {}},  # a REST API event without its path
    ],
)
def test_a_malformed_proxy_event_is_a_400(runtime: LocalRuntime, event: dict[str, Any]) -> None:
    # GIVEN an event that passes for API Gateway's but lacks its method, path or stage
    # WHEN it is answered THEN it is a 400 that says so, not a 500
    status, document = call(runtime, event)
    assert (status, document["error"]) == (400, "bad_request")
    assert "API Gateway proxy event" in document["message"]


@pytest.mark.parametrize(
    ("raw_path", "stage", "path"),
    [
        ("/prod/events", "prod", "/events"),  # the default endpoint: rawPath starts with the stage
        ("/events", "prod", "/events"),  # a custom domain maps the stage away
        ("/events", "$default", "/events"),
        ("/production/events", "prod", "/production/events"),  # only a whole path segment is the stage
        ("/prod/prod/events", "prod", "/prod/events"),  # the stage is taken off once
    ],
)
def test_a_v2_stage_prefix_is_taken_off_the_path(raw_path: str, stage: str, path: str) -> None:
    assert request_of(v2("POST", raw_path, stage=stage)).path == path


def test_a_v2_event_on_a_named_stage_is_routed_to_events(runtime: LocalRuntime) -> None:
    # GIVEN the canned POST on stage "prod", as the stage's default endpoint sends it
    event = canned("apigw_http_v2_post_events.json")
    event["rawPath"] = "/prod/events"
    event["requestContext"]["stage"] = "prod"
    event["requestContext"]["http"]["path"] = "/prod/events"
    # WHEN it is answered THEN it is POST /events: accepted, and its three events curated
    status, document = call(runtime, event)
    assert (status, document["received"], document["rejected"]) == (202, 3, 0)
    assert runtime.curated.count() == 3


def test_a_lower_case_method_is_understood(runtime: LocalRuntime) -> None:
    assert call(runtime, v2("get", "/health"))[0] == 200


def test_v1_headers_in_mixed_case_are_read(runtime: LocalRuntime) -> None:
    # GIVEN REST events whose header names are in mixed case: NDJSON, gzip + base64, and an unsupported type
    events = [make_event("page_view"), make_event("signup")]
    as_ndjson = v1("POST", "/events", body=ndjson(*events).decode(), headers={"Content-Type": "application/x-ndjson"})
    gzipped = v1(
        "POST",
        "/events",
        body=base64.b64encode(gzip.compress(ndjson(*events))).decode(),
        headers={"CONTENT-TYPE": "application/x-ndjson", "Content-Encoding": "gzip"},
    )
    gzipped["isBase64Encoded"] = True
    csv = v1("POST", "/events", body="a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    # WHEN they are answered THEN the headers were read whatever their case
    assert call(runtime, as_ndjson)[1]["received"] == 2
    assert call(runtime, gzipped)[1]["received"] == 2
    assert call(runtime, csv)[0] == 415


# --- POST /events ---------------------------------------------------------------------------------------


def test_the_202_answer_has_exactly_the_documented_shape(runtime: LocalRuntime) -> None:
    # GIVEN NDJSON with a valid event, a line that is not JSON and an event without event_type
    no_type = {k: v for k, v in make_event().items() if k != "event_type"}
    body = b"\n".join([orjson.dumps(make_event()), b"{nope", orjson.dumps(no_type)])
    # WHEN it is posted
    status, document = post(runtime, body)
    # THEN 202 with exactly batch_id, received, rejected and errors; each error with index (0-based, in every
    # body form), event_id and reasons, and for NDJSON its line (1-based)
    assert status == 202
    assert set(document) == {"batch_id", "received", "rejected", "errors"}
    assert (document["received"], document["rejected"]) == (3, 2)
    assert all(set(error) == {*ITEM_KEYS, "line"} for error in document["errors"])
    assert all(set(reason) == REASON_KEYS for error in document["errors"] for reason in error["reasons"])
    assert [(e["index"], e["line"], e["event_id"], e["reasons"][0]["code"]) for e in document["errors"]] == [
        (1, 2, None, "malformed_json"),
        (2, 3, no_type["event_id"], "envelope_invalid"),
    ]
    assert document["errors"][1]["reasons"][0]["path"] == "$.event_type"


@pytest.mark.parametrize("form", ["ndjson", "array", "events-object"])
def test_an_error_index_is_the_0_based_position_in_every_body_form(runtime: LocalRuntime, form: str) -> None:
    # GIVEN a valid event, then one without event_id, in each body form
    no_id = {k: v for k, v in make_event().items() if k != "event_id"}
    items = [make_event(), no_id]
    body, content_type = {
        "ndjson": (b"\n" + b"\n".join(map(orjson.dumps, items)), "application/x-ndjson"),  # a blank first line
        "array": (orjson.dumps(items), "application/json"),
        "events-object": (orjson.dumps({"events": items}), "application/json"),
    }[form]
    # WHEN posted
    _, document = post(runtime, body, content_type)
    # THEN the error's index is 1 in every form; NDJSON adds the line it was on (3: after a blank line)
    (error,) = document["errors"]
    assert error["index"] == 1
    assert error.get("line") == (3 if form == "ndjson" else None)


def test_each_request_is_a_new_batch(runtime: LocalRuntime) -> None:
    body = orjson.dumps([make_event()])
    first, second = post(runtime, body, "application/json")[1], post(runtime, body, "application/json")[1]
    assert first["batch_id"] != second["batch_id"]
    assert first["batch_id"].startswith("h")
    assert len(first["batch_id"]) <= 30  # Step Functions execution names: batch id + "-retry-" + ms must fit 80


def test_a_body_with_a_lone_surrogate_is_refused_per_event(runtime: LocalRuntime) -> None:
    # GIVEN an API Gateway event whose body string holds a lone surrogate (JSON "\ud800" in the event itself)
    body = orjson.dumps(make_event()).decode() + "\n" + '{"event_id": "e-1", "event_type": "x", "t": "\ud800"}'
    event = v2("POST", "/events", body=body, headers={"content-type": "application/x-ndjson"})
    # WHEN it is answered THEN that line is refused on its own, never a 500
    status, document = call(runtime, event)
    assert status == 202
    assert [(e["index"], e["line"], e["reasons"][0]["code"]) for e in document["errors"]] == [(1, 2, "malformed_json")]


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        pytest.param({"body": None}, 400, "bad_request", id="no-body"),
        pytest.param({"body": ""}, 400, "bad_request", id="empty"),
        pytest.param({"body": "  \n "}, 400, "bad_request", id="whitespace"),
        pytest.param({"body": {"events": []}}, 400, "bad_request", id="body-not-a-string"),
        pytest.param({"body": "not base64!", "isBase64Encoded": True}, 400, "bad_request", id="bad-base64"),
        pytest.param({"body": "{nope"}, 400, "bad_request", id="not-json"),
        pytest.param({"body": "x" * (1024 * 1024 + 1)}, 413, "too_large", id="over-1-MiB"),
        pytest.param(
            {"body": orjson.dumps([{"event_id": "x", "event_type": "y"}] * 51).decode()},
            413,
            "too_large",
            id="over-the-50-events-of-a-batch",
        ),
        pytest.param({"headers": {"content-type": "text/csv"}}, 415, "unsupported_media_type", id="csv"),
        pytest.param({"headers": {"content-encoding": "br"}}, 415, "unsupported_media_type", id="brotli"),
    ],
)
def test_bad_posts_get_a_4xx_with_error_and_message(
    runtime: LocalRuntime, change: dict[str, Any], status: int, error: str
) -> None:
    # GIVEN the canned POST, broken in one way
    event = canned("apigw_http_v2_post_events.json")
    event.update(change)
    # WHEN it is answered THEN the status and error code say why (call() checks the error document's shape)
    answer_status, document = call(runtime, event)
    assert (answer_status, document["error"]) == (status, error)
    # AND nothing was stored
    assert list(runtime.bucket.keys("raw/")) == []


# --- GET /batches/{batch_id} -----------------------------------------------------------------------------


def test_get_batch_has_exactly_the_documented_shape(runtime: LocalRuntime) -> None:
    # GIVEN a posted batch: two valid events, one refused at ingest, one that breaks its schema
    bad_schema = make_event("signup", properties={"method": "carrier-pigeon"})
    body = b"\n".join([orjson.dumps(make_event()), b"[1]", orjson.dumps(bad_schema), orjson.dumps(make_event())])
    accepted = post(runtime, body)[1]
    # WHEN the batch is read
    status, batch = call(runtime, v2("GET", f"/batches/{accepted['batch_id']}"))
    # THEN it has exactly the section 4 members, and each rejection exactly index, event_id and reasons
    assert status == 200
    assert set(batch) == BATCH_KEYS
    assert {k: v for k, v in batch.items() if k != "rejections"} == {
        "batch_id": accepted["batch_id"],
        "status": "done",
        "received": 4,
        "curated": 2,
        "duplicates": 0,
        "rejected": 2,
    }
    assert all(set(r) == ITEM_KEYS for r in batch["rejections"])
    assert all(set(reason) == REASON_KEYS for r in batch["rejections"] for reason in r["reasons"])
    # (index: the same 0-based position in the body as in the 202, for every rejection of the batch)
    assert [(r["index"], r["event_id"], r["reasons"][0]["code"]) for r in batch["rejections"]] == [
        (1, None, "envelope_invalid"),
        (2, bad_schema["event_id"], "schema_violation"),
    ]
    assert batch["rejections"][1]["reasons"][0]["path"] == "$.properties.method"


def test_get_batch_counts_duplicates(runtime: LocalRuntime) -> None:
    body = orjson.dumps([make_event(), make_event()])
    post(runtime, body, "application/json")
    again = post(runtime, body, "application/json")[1]
    batch = call(runtime, v2("GET", f"/batches/{again['batch_id']}"))[1]
    assert (batch["curated"], batch["duplicates"], batch["rejected"]) == (0, 2, 0)


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_get_batch_of_an_unfinished_batch(runtime: LocalRuntime, status: str) -> None:
    # GIVEN a batch record not done yet, or failed
    runtime.batches.create(BatchRecord("b-open", "raw/b-open.ndjson", "http", NOW_MS, received=5))
    if status == "failed":
        runtime.batches.mark_failed("b-open", "States.TaskFailed: boom")
    # WHEN it is read THEN its status is the documented word and nothing is counted yet
    answer = call(runtime, v2("GET", "/batches/b-open"))[1]
    assert answer == {
        "batch_id": "b-open",
        "status": status,
        "received": 5,
        "curated": 0,
        "duplicates": 0,
        "rejected": 0,
        "rejections": [],
    }


# --- routes and methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/nowhere", "/batches", "/batches/", "/batches/a/b", "/events/extra", "/EVENTS", "/insights/x", ""],
)
def test_unknown_routes_are_404(runtime: LocalRuntime, path: str) -> None:
    status, document = call(runtime, v2("GET", path))
    assert (status, document["error"]) == (404, "not_found")


def test_the_tracker_is_a_route_of_the_api(runtime: LocalRuntime) -> None:
    # GIVEN the repository's tracker source
    source = (Path(__file__).parents[2] / "clients" / "js" / "tracker.js").read_text()
    # WHEN API Gateway routes GET /tracker.js to the ingest function
    response = handle_http(v2("GET", "/tracker.js", headers={}), runtime)
    # THEN it answers that script (a POST there is no route)
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/javascript")
    assert response["body"] == source
    assert handle_http(v2("POST", "/tracker.js", body="{}"), runtime)["statusCode"] == 404


def test_an_unknown_batch_is_404(runtime: LocalRuntime) -> None:
    status, document = call(runtime, v2("GET", "/batches/h0000000000000000000000000"))
    assert (status, document["error"]) == (404, "not_found")
    assert "h0000000000000000000000000" in document["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/events"),
        ("PUT", "/events"),
        ("DELETE", "/events"),
        ("POST", "/batches/b1"),
        ("DELETE", "/batches/b1"),
        ("POST", "/insights"),
        ("POST", "/health"),
    ],
)
def test_a_wrong_method_is_405(runtime: LocalRuntime, method: str, path: str) -> None:
    status, document = call(runtime, v2(method, path, body="[]"))
    assert (status, document["error"]) == (405, "method_not_allowed")
    assert list(runtime.bucket.keys("raw/")) == []


def test_a_405_says_which_method_is_allowed(runtime: LocalRuntime) -> None:
    response = handle_http(v2("GET", "/events"), runtime)
    assert response["statusCode"] == 405
    assert {name.lower(): value for name, value in response["headers"].items()}.get("allow") == "POST"


def test_an_error_body_is_exactly_error_then_message(runtime: LocalRuntime) -> None:
    # The bytes clients and scripts match on: every refusal is one HttpError, answered the same way
    assert handle_http(v2("GET", "/events"), runtime)["body"] == (
        '{"error":"method_not_allowed","message":"/events answers POST only"}'
    )
    assert handle_http(v2("GET", "/nowhere"), runtime)["body"].startswith('{"error":"not_found","message":"no route ')


def test_health(runtime: LocalRuntime) -> None:
    assert call(runtime, v2("GET", "/health")) == (200, {"status": "ok", "batches": {"pending": 0, "failed": 0}})


# --- GET /insights ----------------------------------------------------------------------------------------


def test_insights_for_a_window(runtime: LocalRuntime) -> None:
    # GIVEN three curated events in the minute before now
    post(runtime, ndjson(make_event("page_view"), make_event("add_to_cart"), make_event("purchase")))
    # WHEN insights are read for the hour before now
    query = {"since": "2026-11-28T05:00:00Z", "until": "2026-11-28T06:00:00+00:00"}
    status, document = call(runtime, v2("GET", "/insights", query=query))
    # THEN the document has the section 4 members, for that window, counting the three events
    assert status == 200
    assert set(document) == INSIGHTS_KEYS
    assert (document["since"], document["until"], document["currency"]) == (
        "2026-11-28T05:00:00Z",
        "2026-11-28T06:00:00Z",
        "EUR",
    )
    assert document["totals"]["events"] == 3
    assert document["totals"]["by_type"] == {"add_to_cart": 1, "page_view": 1, "purchase": 1}


def test_insights_default_to_the_last_hour(runtime: LocalRuntime) -> None:
    status, document = call(runtime, v2("GET", "/insights"))
    assert status == 200
    assert (document["since"], document["until"]) == ("2026-11-28T05:00:00Z", "2026-11-28T06:00:00Z")
    # AND since alone counts up to now; until alone counts the hour before it
    since_only = call(runtime, v2("GET", "/insights", query={"since": "2026-11-28T05:30:00Z"}))[1]
    assert (since_only["since"], since_only["until"]) == ("2026-11-28T05:30:00Z", "2026-11-28T06:00:00Z")
    until_only = call(runtime, v2("GET", "/insights", query={"until": "2026-11-27T10:00:00+02:00"}))[1]
    assert (until_only["since"], until_only["until"]) == ("2026-11-27T07:00:00Z", "2026-11-27T08:00:00Z")


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"since": "yesterday"}, id="words"),
        pytest.param({"since": "2026-11-28T05:00:00"}, id="no-offset"),
        pytest.param({"until": "2026-11-28"}, id="date-only"),
        pytest.param({"since": "2026-13-01T00:00:00Z"}, id="month-13"),
        pytest.param({"since": "2026-11-28T05:00:00 00:00"}, id="plus-decoded-as-space"),
        pytest.param({"since": "2026-11-28T06:00:00Z", "until": "2026-11-28T05:00:00Z"}, id="since-after-until"),
        pytest.param({"since": "2026-10-28T05:59:59Z"}, id="31-days-and-a-second"),
        pytest.param({"since": to_iso(NOW_MS - MAX_WINDOW_MS - 1000)}, id="longest-window-and-a-second"),
        pytest.param({"since": "0001-01-01T00:00:00+01:00", "until": "0001-01-01T00:30:00+01:00"}, id="before-year-1"),
        pytest.param({"since": "9999-12-31T23:00:00-23:59", "until": "9999-12-31T23:59:59-23:59"}, id="after-9999"),
        pytest.param({"since": "1970-01-01T00:00:00Z"}, id="decades"),
    ],
)
def test_a_bad_insights_window_is_400(runtime: LocalRuntime, query: dict[str, str]) -> None:
    status, document = call(runtime, v2("GET", "/insights", query=query))
    assert (status, document["error"]) == (400, "bad_request")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "yesterday"}, "since 'yesterday' is neither an RFC 3339 time with an offset"),
        ({"since": "2026-11-28T06:00:00Z", "until": "2026-11-28T05:00:00Z"}, "since must not be after until"),
        ({"since": "2026-11-26T06:00:00Z"}, "the window is 48.0 hours long; at most 24 hours are served"),
        ({"since": "1969-12-31T23:00:00Z"}, "between 1970 and 9998"),
    ],
)
def test_a_bad_window_is_400_with_the_rule_it_broke(runtime: LocalRuntime, query: dict[str, str], message: str) -> None:
    status, document = call(runtime, v2("GET", "/insights", query=query))
    assert status == 400
    assert message in document["message"]
    assert ("RFC 3339" in document["message"]) == (query.get("since") == "yesterday")


def test_a_window_may_be_a_span_back_from_now_as_in_the_cli(runtime: LocalRuntime) -> None:
    status, document = call(runtime, v2("GET", "/insights", query={"since": "2h"}))
    assert (status, document["since"]) == (200, seconds_iso((NOW_MS - 2 * 3_600_000) // 1000))


def test_the_longest_window_is_allowed(runtime: LocalRuntime) -> None:
    # GIVEN since exactly the longest window before now, WHEN insights are read THEN they are answered
    since = to_iso(NOW_MS - MAX_WINDOW_MS)
    status, document = call(runtime, v2("GET", "/insights", query={"since": since}))
    assert (status, document["since"]) == (200, seconds_iso((NOW_MS - MAX_WINDOW_MS) // 1000))


# --- storage failures ---------------------------------------------------------------------------------------


def failing(error: type[StorageError] = StorageError) -> Any:
    def fail(*_: Any, **__: Any) -> Any:
        raise error("database is locked")

    return fail


@pytest.mark.parametrize("error", [StorageError, ObjectNotFoundError])
@pytest.mark.parametrize(
    ("target", "method", "event"),
    [
        ("ingestor", "submit_request", lambda: v2("POST", "/events", body=orjson.dumps([make_event()]).decode())),
        ("batches", "create", lambda: v2("POST", "/events", body=orjson.dumps([make_event()]).decode())),
        ("bucket", "put", lambda: v2("POST", "/events", body=orjson.dumps([make_event()]).decode())),
        ("batches", "get", lambda: v2("GET", "/batches/b1")),
        ("quarantine", "for_batch", lambda: v2("GET", "/batches/b1")),
        ("insights", "read", lambda: v2("GET", "/insights")),
    ],
)
def test_a_storage_failure_is_503_never_500(
    runtime: LocalRuntime,
    monkeypatch: pytest.MonkeyPatch,
    error: type[StorageError],
    target: str,
    method: str,
    event: Any,
) -> None:
    # GIVEN a batch to read, then a store that fails
    runtime.batches.create(BatchRecord("b1", "raw/b1.ndjson", "http", NOW_MS, received=1))
    monkeypatch.setattr(getattr(runtime, target), method, failing(error))
    # WHEN a request needs it THEN 503 tells the client to retry
    assert call(runtime, event()) == (503, {"error": "unavailable", "message": "storage is unavailable; retry later"})


# --- file drops: drops_of -----------------------------------------------------------------------------------


def s3_record(key: str, *, event_name: str = "ObjectCreated:Put", version: str | None = None) -> dict[str, Any]:
    record = copy.deepcopy(canned("s3_put_incoming.json")["Records"][0])
    record["eventName"] = event_name
    record["s3"]["object"]["key"] = key
    if version is None:
        del record["s3"]["object"]["versionId"]
    else:
        record["s3"]["object"]["versionId"] = version
    return record


ETAG = "0123456789abcdef0123456789abcdef"  # the canned notifications' ETag
CANNED_KEY = "incoming/2026/11/28/clicks batché 1.ndjson"


def test_drops_of_an_s3_notification() -> None:
    # GIVEN an S3 notification with two created objects and a removed one
    event = {
        "Records": [
            s3_record("incoming/clicks+batch%C3%A9+1.ndjson", version="v-1"),
            s3_record("incoming/a+b.ndjson", event_name="ObjectRemoved:Delete", version="v-2"),
            s3_record("incoming/1%2B1%3D2.ndjson"),  # an unversioned bucket: no versionId
        ]
    }
    assert is_drop_event(event)
    # WHEN the drops are read THEN the removed object is skipped, keys are decoded ("+" is a space,
    # "%2B" a literal plus), and each keeps its version id (None without versioning) and its ETag
    assert drops_of(event) == [
        ObjectDrop("eventpipe-raw-test", "incoming/clicks batché 1.ndjson", "v-1", ETAG),
        ObjectDrop("eventpipe-raw-test", "incoming/1+1=2.ndjson", None, ETAG),
    ]


def test_drops_of_the_canned_notifications_name_the_same_object() -> None:
    s3, eventbridge = canned("s3_put_incoming.json"), canned("eventbridge_s3_object_created.json")
    assert is_drop_event(s3)
    assert is_drop_event(eventbridge)
    expected = [ObjectDrop("eventpipe-raw-test", CANNED_KEY, "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd", ETAG)]
    assert drops_of(s3) == drops_of(eventbridge) == expected


def test_drops_of_an_eventbridge_event_decodes_a_literal_plus() -> None:
    event = canned("eventbridge_s3_object_created.json")
    event["detail"]["object"]["key"] = "incoming/a+b%2Bc.ndjson"
    assert [d.key for d in drops_of(event)] == ["incoming/a b+c.ndjson"]


def test_drops_of_an_eventbridge_event_from_an_unversioned_bucket() -> None:
    # GIVEN an EventBridge event from a bucket without versioning: no version-id
    event = canned("eventbridge_s3_object_created.json")
    del event["detail"]["object"]["version-id"]
    # WHEN it is read THEN the drop has no version id, and its ETag tells this content of the key apart
    (drop,) = drops_of(event)
    assert drop == ObjectDrop("eventpipe-raw-test", CANNED_KEY, None, ETAG)
    assert drop.source != ObjectDrop("eventpipe-raw-test", CANNED_KEY, None, "another-etag").source


def test_a_drop_of_other_content_under_the_same_key_gets_other_batches(runtime: LocalRuntime) -> None:
    # GIVEN a file ingested under a key, then other content put under the same key (a new ETag)
    runtime.bucket.put("incoming/daily.ndjson", ndjson(make_event()))
    first = ingest_drop(ObjectDrop(runtime.bucket.name, "incoming/daily.ndjson", None, "etag-1"), runtime)
    runtime.bucket.put("incoming/daily.ndjson", ndjson(make_event(), make_event()))
    # WHEN its notification arrives THEN it is read as new batches, not taken for the first content's
    second = ingest_drop(ObjectDrop(runtime.bucket.name, "incoming/daily.ndjson", None, "etag-2"), runtime)
    assert (first.summary.curated, second.summary.curated) == (1, 2)
    assert runtime.curated.count() == 3


# --- file drops: ingest_drop ----------------------------------------------------------------------------------


def test_ingest_drop_of_a_file_under_incoming(runtime: LocalRuntime) -> None:
    # GIVEN a file of 60 events (with one bad line) dropped under incoming/ of the runtime's bucket
    events = [make_event("page_view") for _ in range(59)]
    runtime.bucket.put("incoming/x.ndjson", ndjson(*events[:30], b"{nope", *events[30:]))
    drop = ObjectDrop(runtime.bucket.name, "incoming/x.ndjson", None)
    # WHEN it is ingested
    outcome = ingest_drop(drop, runtime)
    # THEN it was cut into batches of 50, run, and every event is accounted for
    assert outcome.as_dict() == {
        "key": "incoming/x.ndjson",
        "status": "ingested",
        "batches": 2,
        "received": 60,
        "curated": 59,
        "duplicates": 0,
        "rejected": {"malformed_json": 1},
    }
    assert runtime.curated.count() == 59
    # AND a second notification of the same object finds its batches done: nothing counted twice
    again = ingest_drop(drop, runtime)
    assert (again.status, again.summary.batches, again.summary.curated) == ("ingested", 2, 59)
    assert runtime.curated.count() == 59
    assert sum(1 for _ in runtime.quarantine.iter_all()) == 1


def test_ingest_drop_of_a_gzip_file(runtime: LocalRuntime) -> None:
    runtime.bucket.put("incoming/y.ndjson.gz", gzip.compress(ndjson(*(make_event() for _ in range(3)))))
    outcome = ingest_drop(ObjectDrop(runtime.bucket.name, "incoming/y.ndjson.gz", None), runtime)
    assert (outcome.status, outcome.summary.curated) == ("ingested", 3)


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        pytest.param(None, "raw/someone-elses.ndjson", id="raw-prefix"),
        pytest.param(None, "incomingx/a.ndjson", id="prefix-lookalike"),
        pytest.param(None, "x/incoming/a.ndjson", id="incoming-deeper"),
        pytest.param("another-bucket", "incoming/a.ndjson", id="another-bucket"),
    ],
)
def test_ingest_drop_outside_incoming_is_ignored(runtime: LocalRuntime, bucket: str | None, key: str) -> None:
    # GIVEN an object that exists, but not under incoming/ of the raw bucket
    runtime.bucket.put(key, ndjson(make_event()))
    # WHEN its notification is handled THEN it is ignored: nothing read, nothing stored
    outcome = ingest_drop(ObjectDrop(bucket or runtime.bucket.name, key, None), runtime)
    assert (outcome.status, outcome.summary.received) == ("ignored", 0)
    assert runtime.curated.count() == 0


def test_ingest_drop_of_a_missing_key_is_missing(runtime: LocalRuntime) -> None:
    outcome = ingest_drop(ObjectDrop(runtime.bucket.name, "incoming/gone.ndjson", "v-1"), runtime)
    assert (outcome.status, outcome.summary.batches) == ("missing", 0)
    assert outcome.error
    assert "incoming/gone.ndjson" in outcome.error
    assert outcome.as_dict()["status"] == "missing"


def test_ingest_drop_of_a_broken_gzip_file_is_refused(runtime: LocalRuntime) -> None:
    runtime.bucket.put("incoming/z.gz", b"\x1f\x8b" + b"garbage")
    outcome = ingest_drop(ObjectDrop(runtime.bucket.name, "incoming/z.gz", None), runtime)
    assert outcome.status == "refused"
    assert outcome.error

"""localrun/apigw.py: an HTTP request as the API Gateway HTTP API (payload 2.0) event, and a function's
proxy response back as status, headers and body (no server, no network)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventpipe.handlers.http_api import request_of
from eventpipe.localrun.apigw import http_api_event, http_request, proxy_response

CANNED_V2 = Path(__file__).parents[1] / "events" / "apigw_http_v2_post_events.json"


def event_of(
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
    body: bytes = b"",
    method: str = "POST",
    path: str = "/events",
) -> dict[str, Any]:
    return http_api_event(
        method=method,
        path=path,
        query_string=query,
        headers=headers or [(b"host", b"127.0.0.1:8080")],
        body=body,
        source_ip="127.0.0.9",
    )


def test_the_event_has_the_keys_api_gateway_sends() -> None:
    # GIVEN API Gateway's own event for a POST (a canned one)
    canned = json.loads(CANNED_V2.read_text())
    # WHEN a request becomes an event here
    event = event_of(
        headers=[(b"host", b"h"), (b"user-agent", b"curl/8"), (b"cookie", b"a=1")], query=b"a=1", body=b"{}"
    )
    # THEN it has the same keys (stage variables and authorizers aside) and the same version
    assert set(canned) - set(event) <= {"stageVariables"}
    assert set(canned["requestContext"]) - set(event["requestContext"]) <= {"authentication", "authorizer"}
    assert set(event["requestContext"]["http"]) == set(canned["requestContext"]["http"])
    assert (event["version"], event["routeKey"], event["requestContext"]["stage"]) == ("2.0", "$default", "$default")
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["sourceIp"], http["userAgent"]) == (
        "POST",
        "/events",
        "127.0.0.9",
        "curl/8",
    )
    assert event["requestContext"]["domainName"] == "h"


def test_repeated_headers_are_joined_by_commas_and_names_lower_cased() -> None:
    event = event_of(
        headers=[(b"X-Tag", b"a"), (b"x-tag", b"b"), (b"Content-Type", b"application/json"), (b"X-TAG", b"c")]
    )
    assert event["headers"] == {"x-tag": "a,b,c", "content-type": "application/json"}


def test_cookies_move_out_of_the_headers() -> None:
    event = event_of(headers=[(b"cookie", b"a=1; b=2;"), (b"Cookie", b" c=3 "), (b"x", b"y")])
    assert event["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in event["headers"]
    assert "cookies" not in event_of()


def test_query_values_are_decoded_and_repeated_keys_joined() -> None:
    event = event_of(query=b"since=2026-11-28T05%3A00%3A00Z&t=a&t=b&empty=&plus=a+b")
    assert event["rawQueryString"] == "since=2026-11-28T05%3A00%3A00Z&t=a&t=b&empty=&plus=a+b"
    assert event["queryStringParameters"] == {"since": "2026-11-28T05:00:00Z", "t": "a,b", "empty": "", "plus": "a b"}
    assert "queryStringParameters" not in event_of()


def test_a_query_that_is_not_utf8_or_not_percent_encoding_still_makes_an_event() -> None:
    event = event_of(query=b"since=%ZZ&x=%ff&y=\xff")
    assert event["queryStringParameters"]["since"] == "%ZZ"
    assert set(event["queryStringParameters"]) == {"since", "x", "y"}


def test_a_utf8_body_travels_as_text() -> None:
    body = '{"name": "Zoë"}'.encode()
    event = event_of(body=body)
    assert (event["body"], event["isBase64Encoded"]) == ('{"name": "Zoë"}', False)
    assert request_of(event).body == body


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (b"\xff\xfe{}", None),  # not UTF-8
        (b"\xed\xa0\x80", None),  # a lone surrogate in raw bytes is not UTF-8 either
        (gzip.compress(b'{"a": 1}'), b"gzip"),
        (b'{"a": 1}', b"gzip"),  # declared compressed: never re-read as text
        (b'{"a": 1}', b"br"),
    ],
)
def test_a_binary_or_encoded_body_travels_base64(body: bytes, encoding: bytes | None) -> None:
    headers = [(b"content-encoding", encoding)] if encoding else []
    event = event_of(headers=headers, body=body)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    # AND the handler gets back the same bytes
    assert request_of(event).body == body


@pytest.mark.parametrize("encoding", [b"identity", b" Identity "])
def test_an_identity_encoded_body_is_text(encoding: bytes) -> None:
    event = event_of(headers=[(b"content-encoding", encoding)], body=b"{}")
    assert (event["body"], event["isBase64Encoded"]) == ("{}", False)


def test_an_empty_body_is_left_out() -> None:
    event = event_of(method="GET", path="/health")
    assert "body" not in event
    assert event["isBase64Encoded"] is False
    assert request_of(event).body == b""


def test_header_bytes_that_are_not_utf8_still_make_an_event() -> None:
    event = event_of(headers=[(b"x-odd", b"\xff\x00\x80")])
    assert event["headers"]["x-odd"] == "\xff\x00\x80"


def test_each_event_has_its_own_request_id_and_a_time() -> None:
    first, second = event_of(), event_of()
    assert first["requestContext"]["requestId"] != second["requestContext"]["requestId"]
    assert first["requestContext"]["timeEpoch"] > 1_700_000_000_000


@pytest.mark.parametrize(
    ("headers", "query", "body"),
    [
        ([(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/x-ndjson")], b"", b'{"a":1}\n{"b":2}'),
        ([(b"X-Tag", b"a"), (b"x-tag", b"b"), (b"cookie", b"a=1; b=2"), (b"x-odd", b"\xff\x00")], b"", b"{}"),
        ([(b"x-api-key", b"k")], b"key=k&t=a&t=b&empty=&plus=a+b&bad=%ZZ&raw=\xff", b"[]"),
        ([(b"content-encoding", b"gzip")], b"", gzip.compress(b'{"a": 1}')),
        ([], b"", b"\xff\xfe{}"),
        ([], b"", b""),
    ],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/events"), ("post", "/events/")])
def test_the_request_built_directly_is_the_one_read_from_the_event(
    headers: list[tuple[bytes, bytes]], query: bytes, body: bytes, method: str, path: str
) -> None:
    # GIVEN a request as `eventpipe up`'s loop builds it, and as the handler reads it from the event
    request = dict(method=method, path=path, query_string=query, headers=headers, body=body, source_ip="127.0.0.9")
    # THEN they are the same: method, path, headers (no cookies), query, body and address
    assert http_request(**request) == request_of(http_api_event(**request))  # type: ignore[arg-type]


def test_a_proxy_response_with_headers() -> None:
    result = {"statusCode": 202, "headers": {"Content-Type": "application/json", "X-A": 1}, "body": '{"ok": true}'}
    assert proxy_response(result) == (
        202,
        [(b"content-type", b"application/json"), (b"x-a", b"1")],
        b'{"ok": true}',
    )


def test_multi_value_headers_and_cookies_become_repeated_headers() -> None:
    result = {
        "statusCode": 200,
        "headers": {"x-one": "1"},
        "multiValueHeaders": {"X-Many": ["a", "b"]},
        "cookies": ["s=1; HttpOnly", "t=2"],
    }
    status, headers, body = proxy_response(result)
    assert status == 200
    assert headers == [
        (b"x-one", b"1"),
        (b"x-many", b"a"),
        (b"x-many", b"b"),
        (b"set-cookie", b"s=1; HttpOnly"),
        (b"set-cookie", b"t=2"),
    ]
    assert body == b""


def test_a_base64_body_is_decoded() -> None:
    data = gzip.compress(b"hello")
    result = {"statusCode": 200, "body": base64.b64encode(data).decode(), "isBase64Encoded": True}
    assert proxy_response(result)[2] == data


def test_a_text_body_is_utf8() -> None:
    assert proxy_response({"statusCode": "201", "body": "Zoë"}) == (201, [], "Zoë".encode())


@pytest.mark.parametrize("result", [{"events": [1]}, {"status": "ok"}, [1, 2], "text", None, 5])
def test_a_result_that_is_not_a_proxy_response_is_a_json_document(result: Any) -> None:
    # API Gateway answers a result without statusCode as 200 with the result as JSON
    status, headers, body = proxy_response(result)
    assert status == 200
    assert headers == [(b"content-type", b"application/json")]
    assert orjson.loads(body) == result

"""Turn an HTTP request into the API Gateway HTTP API (payload 2.0) event a Lambda function gets,
and the function's proxy response back into status, headers and body.

This is what makes `eventpipe up` answer exactly as the deployed `ingest` function does: the same
handler reads the same event shape. `POST /events` on the server's loop skips the event: `http_request`
builds the request the handler would read from it.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from eventpipe.core.batch_ids import random_hex
from eventpipe.handlers.http_request import HttpRequest

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]  # an HTTP answer: status, headers, body


def http_api_event(
    *,
    method: str,
    path: str,
    query_string: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
    source_ip: str,
) -> dict[str, Any]:
    """The event API Gateway would send for this request: repeated headers and query values are
    joined by commas, cookies move to `cookies`, a body that is not UTF-8 text (or is compressed)
    travels base64-encoded."""
    joined, cookies = _headers(headers)
    raw_query = query_string.decode("latin-1")
    query = _query(raw_query)
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": joined.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": random_hex(16),  # opaque, as API Gateway's
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"], event["isBase64Encoded"] = _body_field(body, joined.get("content-encoding"))
    return event


def http_request(
    *,
    method: str,
    path: str,
    query_string: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
    source_ip: str,
) -> HttpRequest:
    """What the handler reads from `http_api_event(...)` (`http_api.request_of`: the same method, path,
    headers without cookies, query, body and address), built without the event in between: `POST
    /events` on the server's loop, where the event and its reading back took 8% of its CPU."""
    joined, _ = _headers(headers)
    return HttpRequest(method.upper(), path, joined, _query(query_string.decode("latin-1")), body, source_ip)


def _headers(headers: Sequence[tuple[bytes, bytes]]) -> tuple[dict[str, str], list[str]]:
    """The headers by lower-case name, repeated ones joined by commas, but cookies; and the cookies."""
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined, cookies


def _query(raw_query: str) -> dict[str, str]:
    """The query's parameters, decoded, repeated ones joined by commas."""
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True) if raw_query else ():
        query[key] = f"{query[key]},{value}" if key in query else value
    return query


def _body_field(body: bytes, content_encoding: str | None) -> tuple[str, bool]:
    if not content_encoding or content_encoding.strip().lower() == "identity":
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def proxy_response(result: Mapping[str, Any]) -> Answer:
    """Status, headers and body of a Lambda proxy response; anything else is a plain JSON document,
    as API Gateway treats a function's result that has no `statusCode`."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, [(b"content-type", b"application/json")], orjson.dumps(result)
    headers = [
        (str(k).lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in (result.get("headers") or {}).items()
    ]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name).lower().encode("latin-1"), str(v).encode("latin-1")) for v in values)
    headers.extend((b"set-cookie", str(cookie).encode("latin-1")) for cookie in result.get("cookies") or ())
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    return int(result["statusCode"]), headers, data

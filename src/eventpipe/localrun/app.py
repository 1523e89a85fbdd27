"""The ASGI application of `eventpipe up`.

Every API request becomes an API Gateway v2 event for the `ingest` function, run in a thread pool
(it blocks on fsync and SQLite), but `POST /events` up to 64 KiB, which the same handler answers on
the event loop from the request it would read from that event. The Lambda Invoke API runs any
function; the dashboard's files are served from this package. Bodies are read with a size limit and
a deadline, so a 1 GB upload or a client that stalls costs neither memory nor a thread.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from eventpipe.handlers.http_api import handle_request, storage_failed
from eventpipe.handlers.http_error import HttpError, error_document
from eventpipe.handlers.ingest import handle_ingest
from eventpipe.handlers.tracker import is_tracker_request, tracker_response
from eventpipe.localrun import dashboard, invoke
from eventpipe.localrun.apigw import Answer, Headers, http_api_event, http_request, proxy_response
from eventpipe.localrun.forwarded import client_address
from eventpipe.localrun.protocol import BODY_RECEIVED

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from concurrent.futures import Executor

    from eventpipe.handlers.http_request import HttpRequest
    from eventpipe.localrun.log_acks import LoopAcks
    from eventpipe.localrun.runtime import LocalRuntime

    Scope = dict[str, Any]
    Message = dict[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger(__name__)
JSON = [(b"content-type", b"application/json")]


class ClientGoneError(Exception):
    """The client closed the connection before its body was read."""


@dataclass
class ServerStats:
    """What the server counts, for `GET /health`."""

    started: float = field(default_factory=time.monotonic)
    responses: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.monotonic() - self.started, 1),
            "responses": dict(sorted(self.responses.items())),
        }


class LocalApp:
    def __init__(
        self,
        runtime: LocalRuntime,
        *,
        executor: Executor,
        token: str | None = None,
        body_timeout_s: float = 30.0,
        stats: ServerStats | None = None,
    ) -> None:
        self._runtime = runtime
        self._executor = executor
        self._token = token.encode() if token else None
        self._body_timeout_s = body_timeout_s
        self.stats = stats or ServerStats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the server runs with lifespan off and no websockets
            return
        try:
            status, headers, body = await self._answer(scope, receive)
        except HttpError as exc:
            status, headers, body = exc.status, [*JSON, (b"connection", b"close")], exc.body()
        except ClientGoneError:
            return
        self.stats.responses[f"{status // 100}xx"] += 1
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> Answer:
        method, path = scope["method"], scope["path"]
        if method == "GET" and (asset := dashboard.asset(path)) is not None:
            return asset  # the page and its scripts hold no data: no token needed to load them
        if is_tracker_request(method, path):
            return proxy_response(tracker_response())  # loaded by pages of other sites, like the dashboard's files
        # Websites send events with a write key, which the handler checks, and preflight without one:
        # neither needs the admin token nor comes from this machine. Everything else is guarded.
        guarded = path != "/health" and not _is_edge_request(method, path, scope)
        if guarded and not self._authorized(scope["headers"]):
            return (
                401,
                [*JSON, (b"www-authenticate", b"Bearer")],
                _error("unauthorized", "send Authorization: Bearer <EVENTPIPE_API_TOKEN>"),
            )
        if guarded and self._token is None and not _from_this_machine(scope["headers"]):
            message = "without a token, only this machine's own pages and programs may call the API"
            return 403, JSON, _error("forbidden", message)
        if match := invoke.INVOKE_PATH.match(path):
            return await self._invoke(match["name"], scope, receive)
        if method == "GET" and path == dashboard.APPS_PATH:
            return await self._in_thread(dashboard.apps, self._runtime)
        if method == "GET" and path == dashboard.REJECTIONS_PATH:
            return await self._in_thread(dashboard.rejections, self._runtime, scope["query_string"])
        body = await self._body(scope, receive, self._runtime.settings.limits.max_body_bytes)
        peer = (scope.get("client") or ("127.0.0.1", 0))[0]
        forwarded = _header(scope["headers"], b"x-forwarded-for")
        source_ip = client_address(peer, forwarded, self._runtime.settings.trusted_proxies)
        acks = self._runtime.log_acks
        if acks is not None and method == "POST" and path.rstrip("/") == "/events" and acks.takes(body):
            return await self._ingest_on_loop(acks, scope, body, source_ip)
        event = http_api_event(
            method=method,
            path=path,
            query_string=scope["query_string"],
            headers=scope["headers"],
            body=body,
            source_ip=source_ip,
        )
        return await self._in_thread(self._ingest, event)

    async def _ingest_on_loop(self, acks: LoopAcks, scope: Scope, body: bytes, source_ip: str) -> Answer:
        """`POST /events` answered on this loop once its record is durable (see localrun/log_acks.py),
        from the request the handler would read from the API Gateway event (`apigw.http_request`)."""
        request = http_request(
            method=scope["method"],
            path=scope["path"],
            query_string=scope["query_string"],
            headers=scope["headers"],
            body=body,
            source_ip=source_ip,
        )
        answer, written = acks.run(self._handle, request)
        if not await acks.durable(written):
            return proxy_response(storage_failed(request))
        return answer

    def _ingest(self, event: dict[str, Any]) -> Answer:
        return proxy_response(handle_ingest(event, self._runtime))

    def _handle(self, request: HttpRequest) -> Answer:
        return proxy_response(handle_request(request, self._runtime))

    async def _invoke(self, name: str, scope: Scope, receive: Receive) -> Answer:
        if scope["method"] != "POST":
            return 405, [*JSON, (b"allow", b"POST")], _error("method_not_allowed", "the Invoke API answers POST only")
        kind = _header(scope["headers"], b"x-amz-invocation-type")
        try:
            body = await self._body(scope, receive, invoke.MAX_PAYLOAD_BYTES)
        except HttpError as exc:  # answered as Lambda does, so SDKs raise their own exception
            if exc.status != 413:
                raise
            return invoke.payload_too_large().answer()
        return await self._in_thread(invoke.answer, name, kind, body, self._runtime)

    async def _body(self, scope: Scope, receive: Receive, limit: int) -> bytes:
        """The request body, refused (413) once past `limit` bytes, or (408) when it takes too long."""
        declared = _header(scope["headers"], b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise HttpError(413, "too_large", f"body larger than {limit} bytes")
        if scope.get(BODY_RECEIVED):  # all there (localrun/protocol.py): `receive` does not wait
            return await _read_body(receive, limit)
        try:
            async with asyncio.timeout(self._body_timeout_s):
                return await _read_body(receive, limit)
        except TimeoutError:
            raise HttpError(408, "timeout", f"the body did not arrive within {self._body_timeout_s:g} s") from None

    async def _in_thread(self, function: Callable[..., Answer], *args: Any) -> Answer:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _authorized(self, headers: Headers) -> bool:
        if self._token is None:
            return True
        value = _header(headers, b"authorization") or ""
        scheme, _, credential = value.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), self._token)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "too_large", f"body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _header(headers: Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _is_edge_request(method: str, path: str, scope: Scope) -> bool:
    """`OPTIONS /events` (a CORS preflight), or `POST /events` with a write key (header or query)."""
    if path.rstrip("/") != "/events":
        return False
    if method == "OPTIONS":
        return True
    if method != "POST":
        return False
    if _header(scope["headers"], b"x-api-key") is not None:
        return True
    if not scope["query_string"]:
        return False
    return any(name == "key" for name, _ in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))


def _error(code: str, message: str) -> bytes:
    return orjson.dumps(error_document(code, message))


def _from_this_machine(headers: Headers) -> bool:
    """A request a web page on another site cannot have made: a Host that names this machine (not a
    rebound DNS name) and no Origin but this server's own. Without a token, that is the guard against
    pages the user visits calling the API through the browser."""
    host = _header(headers, b"host")
    if host is None:
        return True  # not a browser: browsers always send Host
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if not is_loopback(name.strip("[]")):
        return False
    origin = _header(headers, b"origin")
    return origin is None or origin == f"http://{host}"


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address."""
    if host in ("localhost", "127.0.0.1", "::1"):  # nearly every request's Host: no parse
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

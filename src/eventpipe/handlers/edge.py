"""The collection edge of `POST /events`: write keys, CORS and the request's own facts.

Websites and apps send with a write key (`X-Api-Key`, or `?key=` for `navigator.sendBeacon`, which
cannot set headers). Once an app exists every `POST /events` needs one; a key that is sent is
always checked, so a key-shaped guess never gets through even before that.

CORS is answered here, by the function, on both runtimes: the preflight (`OPTIONS /events`) is
allowed for any origin, because it carries no key (browsers send no custom headers with it); the
POST that follows is refused with 403 when its key's app names origins and this is not one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventpipe.core.request_facts import RequestFacts
from eventpipe.handlers.http_error import HttpError

if TYPE_CHECKING:
    from eventpipe.core.apps import AppDirectory
    from eventpipe.core.model import App
    from eventpipe.handlers.http_request import HttpRequest

__all__ = ["PREFLIGHT_HEADERS", "cors_headers", "request_facts", "write_key_app"]

ALLOWED_METHODS = "POST, OPTIONS"
ALLOWED_HEADERS = "content-type, content-encoding, x-api-key, authorization"
PREFLIGHT_MAX_AGE_S = 86400  # browsers cap it lower (Chromium at 2 h); fewer preflights either way

PREFLIGHT_HEADERS = {
    "access-control-allow-methods": ALLOWED_METHODS,
    "access-control-allow-headers": ALLOWED_HEADERS,
    "access-control-max-age": str(PREFLIGHT_MAX_AGE_S),
}


def cors_headers(request: HttpRequest) -> dict[str, str]:
    """The headers that let a page on the request's origin read the answer (none without `Origin`)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return {}
    return {"access-control-allow-origin": origin, "vary": "Origin"}


def write_key_of(request: HttpRequest) -> str | None:
    """The write key the request sends: the `X-Api-Key` header, else the `key` query parameter."""
    key = request.headers.get("x-api-key")
    return key if key is not None else request.query.get("key")


def write_key_app(request: HttpRequest, apps: AppDirectory | None) -> App | None:
    """The app whose key the request carries; None when it carries none and none is needed.

    Raises `HttpError` for a missing key once apps exist, an unknown or revoked key, and an origin
    the app does not accept.
    """
    key = write_key_of(request)
    if key is None:
        if apps is not None and apps.keys_required():
            raise HttpError(
                401, "unauthorized", "POST /events needs a write key: send header X-Api-Key: KEY or ?key=KEY"
            )
        return None
    app = apps.authenticate(key) if apps is not None else None
    if app is None:
        raise HttpError(401, "unauthorized", "the write key is unknown or revoked; `eventpipe apps list` shows apps")
    origin = request.headers.get("origin")
    if not app.accepts_origin(origin):
        raise HttpError(
            403, "forbidden", f"origin {origin} is not allowed for app {app.app_id}; create the app with --origin"
        )
    return app


def request_facts(request: HttpRequest, app: App | None) -> RequestFacts:
    return RequestFacts.of_request(
        app_id=app.app_id if app else None,
        ip=request.source_ip,
        user_agent=request.headers.get("user-agent"),
    )

"""`GET /tracker.js`: the JavaScript tracker (source in `clients/js/`), served by the API itself.

Pages on any site load it with a script tag, so it needs no token and no key: it holds no data.
The same proxy response serves API Gateway (a route without authorizer) and `eventpipe up`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventpipe.handlers.http_request import ProxyResponse

TRACKER_PATH = "/tracker.js"
CONTENT_TYPE = "text/javascript; charset=utf-8"
CACHE_CONTROL = "public, max-age=300"  # short: a new version reaches pages within minutes


@cache
def tracker_source() -> bytes:
    return (resources.files("eventpipe") / "data" / "tracker.js").read_bytes()


def is_tracker_request(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") and path == TRACKER_PATH


def tracker_response() -> ProxyResponse:
    """The proxy response that answers `GET /tracker.js`."""
    return {
        "statusCode": 200,
        "headers": {"content-type": CONTENT_TYPE, "cache-control": CACHE_CONTROL},
        "body": tracker_source().decode("utf-8"),
        "isBase64Encoded": False,
    }

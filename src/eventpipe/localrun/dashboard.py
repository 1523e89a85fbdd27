"""The dashboard's files and its two data routes of its own (the latest rejections, the apps).

The page is `static/index.html` with its script and style; the chart library is plotly.js from the
`plotly` package installed from PyPI, read from that package's files: no CDN, so it works offline.
Its charts read `GET /insights` like any client.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import orjson

if TYPE_CHECKING:
    from eventpipe.core.documents import RejectionDocument
    from eventpipe.localrun.apigw import Answer
    from eventpipe.localrun.runtime import LocalRuntime

REJECTIONS_PATH = "/dashboard/rejections"
APPS_PATH = "/dashboard/apps"
MAX_REJECTIONS = 200
_TYPES = {".html": b"text/html; charset=utf-8", ".js": b"text/javascript; charset=utf-8", ".css": b"text/css"}
PLOTLY_PATH = "/dashboard/vendor/plotly.min.js"


@cache
def _static_files() -> dict[str, bytes]:
    folder = resources.files("eventpipe.localrun") / "static"
    return {f"/dashboard/{item.name}": item.read_bytes() for item in folder.iterdir() if item.is_file()}


@cache
def _plotly() -> bytes:
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()


def asset(path: str) -> Answer | None:
    """The page (`/`) or one of its files; None for any other path."""
    if path in ("/", "/dashboard", "/dashboard/"):
        path = "/dashboard/index.html"
    if path == PLOTLY_PATH:
        data = _plotly()
    elif (found := _static_files().get(path)) is not None:
        data = found
    else:
        return None
    content_type = _TYPES.get(path[path.rfind(".") :], b"application/octet-stream")
    return 200, [(b"content-type", content_type), (b"cache-control", b"no-cache")], data


def rejections(runtime: LocalRuntime, query_string: bytes) -> Answer:
    """`{"rejections": [...]}`: the latest quarantine records, newest first (`?limit=`, at most 200)."""
    values = parse_qs(query_string.decode("latin-1")).get("limit", ["50"])
    limit = int(values[0]) if re.fullmatch(r"[0-9]{1,4}", values[0]) else 50
    records = runtime.quarantine.latest(min(max(limit, 1), MAX_REJECTIONS))
    document = {"rejections": [_row(r.as_dict()) for r in records]}
    return 200, [(b"content-type", b"application/json")], orjson.dumps(document)


def _row(record: RejectionDocument) -> RejectionDocument:
    record["raw"] = record["raw"][:300]  # the table shows the start; `eventpipe rejected` has it all
    return record


def apps(runtime: LocalRuntime) -> Answer:
    """`{"apps": [{"app_id", "name", "revoked"}]}` for the app selector: never a key or its hash."""
    listed = [{"app_id": app.app_id, "name": app.name, "revoked": app.revoked} for app in runtime.apps.store.list_all()]
    return 200, [(b"content-type", b"application/json")], orjson.dumps({"apps": listed})

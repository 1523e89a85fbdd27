"""The one error of the HTTP layer: a status, a code and a message, answered as `{"error", "message"}`.

Every refusal an HTTP client can meet is one of these: the API's routes (`http_api.py`), the write
key and origin checks (`edge.py`), the local server's body reading and the local Invoke API (which
answers in Lambda's own error shape, `localrun/invoke.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

import orjson

from eventpipe.core.errors import EventpipeError

if TYPE_CHECKING:
    from collections.abc import Mapping


class ErrorDocument(TypedDict):
    """The body of every 4xx and 503 of the API (docs/http-api.md)."""

    error: str
    message: str


class HttpError(EventpipeError):
    """A request refused with `status`; `code` is the body's `error`, `headers` are added to the answer."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = dict(headers or {})

    def document(self) -> ErrorDocument:
        return error_document(self.code, str(self))

    def body(self) -> bytes:
        return orjson.dumps(self.document())


def error_document(code: str, message: str) -> ErrorDocument:
    return {"error": code, "message": message}

"""One HTTP request as the handlers see it, whichever server or API Gateway version carried it.

Its own module so that the API (`http_api`) and the edge checks (`edge`) both use it without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, final

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # names in lower case
    query: Mapping[str, str]
    body: bytes
    source_ip: str | None = None  # the client's address as API Gateway (or `eventpipe up`) saw it


@final
class ProxyResponse(TypedDict):
    """An HTTP answer as a Lambda proxy integration returns it (API Gateway, `eventpipe up`)."""

    statusCode: int
    headers: dict[str, str]
    body: str
    isBase64Encoded: bool

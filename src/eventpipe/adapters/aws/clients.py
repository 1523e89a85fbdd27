"""boto3 clients with the timeouts and retry mode every adapter shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from boto3.session import Session

# Standard retry mode retries throttling and transient errors with backoff; adapters add their own
# loop for what it leaves (UnprocessedItems, throttling past its budget).
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=15,
    max_pool_connections=16,  # the curated store writes with several threads
)


def make_client(service: str, session: Session | None = None) -> Any:
    """A client for `service` from one shared session (clients are thread-safe; sessions are not)."""
    return (session or boto3.session.Session()).client(service, config=CLIENT_CONFIG)  # type: ignore[call-overload]

"""botocore clients with the timeouts and retry mode every adapter shares.

Built from a botocore session rather than boto3: boto3's import also loads s3transfer, which
eventpipe does not use, and that alone is a fifth of a cold start. The session reads botocore's
models with orjson (`botocore_loader.py`): a client is built in a quarter of the time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.config import Config

from eventpipe.adapters.aws.botocore_loader import fast_session
from eventpipe.adapters.aws.model_cache import SERVICES

if TYPE_CHECKING:
    import botocore.session

# Standard retry mode retries throttling and transient errors with backoff; adapters add their own
# loop for what it leaves (UnprocessedItems, throttling past its budget).
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=15,
    max_pool_connections=16,  # the curated store writes with several threads
)


def make_client(service: str, session: botocore.session.Session | None = None) -> Any:
    """A client for `service`, from one shared session (clients are thread-safe; sessions are not).

    Only the services the Lambda package's model cache holds: its cut `endpoints.json` knows no other.
    """
    if service not in SERVICES:
        raise ValueError(f"no client for {service!r}: add it to SERVICES in eventpipe/adapters/aws/model_cache.py")
    return (session or fast_session()).create_client(service, config=CLIENT_CONFIG)

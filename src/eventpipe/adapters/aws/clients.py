"""botocore clients with the timeouts and retry mode every adapter shares.

Built from a botocore session rather than boto3: boto3's import also loads s3transfer, which
eventpipe does not use, and that alone is a fifth of a cold start. The session reads botocore's
models with orjson (`botocore_loader.py`): a client is built in a quarter of the time.
"""

from __future__ import annotations

import threading
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


def make_client(service: str, session: botocore.session.Session | None = None, *, lazy: bool = False) -> Any:
    """A client for `service`, from one shared session (clients are thread-safe; sessions are not).

    Only the services the Lambda package's model cache holds: its cut `endpoints.json` knows no other.
    `lazy`: a `LazyClient`, which builds the client at its first use.
    """
    if service not in SERVICES:
        raise ValueError(f"no client for {service!r}: add it to SERVICES in eventpipe/adapters/aws/model_cache.py")
    if lazy:
        return LazyClient(service, session)
    return (session or fast_session()).create_client(service, config=CLIENT_CONFIG)


_OWN_FIELDS = frozenset({"_service", "_session", "_client", "_lock"})


class LazyClient:
    """A client built when first used (an attribute read, e.g. a call), then kept: the adapters of a
    Lambda container hold one each from cold start, and an invocation builds only the clients it
    calls. A small request to `ingest` puts one record on the request stream: it never builds the S3
    and Step Functions clients its ingestor holds (about 4 ms each, at its cold start)."""

    def __init__(self, service: str, session: botocore.session.Session | None) -> None:
        self._service, self._session = service, session
        self._client: Any = None
        self._lock = threading.Lock()  # the curated store's threads may be the first to call

    def __getattr__(self, name: str) -> Any:  # only for names the proxy itself does not have
        if name in _OWN_FIELDS or name.startswith("__"):  # e.g. copy's look-ups before __init__: no client
            raise AttributeError(name)
        return getattr(self._built(), name)

    @property
    def built(self) -> bool:
        return self._client is not None

    def _built(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = make_client(self._service, self._session)
        return self._client

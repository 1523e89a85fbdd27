"""`fingerprint`: a digest of what an event says, to spot one event sent under two event ids.

Idempotency is keyed by `event_id`, which catches retries of the same request. A client that
regenerates the id on each retry (or a replayed export) slips past it; the fingerprint does not,
since it covers only the content:

    blake2b(json([event_type, user_id or anonymous_id, occurred_at, properties]), digest_size=16)

serialised with orjson OPT_SORT_KEYS, so key order does not matter, and as one JSON array, so no
two different contents can concatenate to the same bytes. 128 bits make accidental collisions
negligible. When a pseudonym key is configured the digest is keyed with a key derived from it:
properties may hold personal data, and an unkeyed digest would let anyone confirm a guess of them.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from eventpipe.core.errors import EnrichmentError

__all__ = ["FingerprintEnricher"]

_OPTIONS = orjson.OPT_SORT_KEYS


def derive_key(secret: bytes) -> bytes:
    """A 32-byte BLAKE2b key for fingerprints, separate from the pseudonym key it comes from."""
    return hashlib.blake2b(secret, digest_size=32, person=b"eventpipe-fp").digest()


class FingerprintEnricher:
    """Writes `enrichment["fingerprint"]`, 32 hex characters."""

    __slots__ = ("_hasher",)
    name = "fingerprint"

    def __init__(self, secret: bytes | None = None) -> None:
        # Keying BLAKE2b processes one extra block; doing it once and copying the state is cheaper.
        self._hasher = hashlib.blake2b(digest_size=16, key=derive_key(secret) if secret else b"")

    def enrich(self, event: dict[str, Any], enrichment: dict[str, Any]) -> None:
        user = event.get("user_id")
        if user is None:
            user = event.get("anonymous_id")
        content = [event.get("event_type"), user, event.get("occurred_at"), event.get("properties")]
        try:
            data = orjson.dumps(content, option=_OPTIONS)
        except orjson.JSONEncodeError as exc:
            # Only reachable with values JSON cannot carry, e.g. integers beyond 64 bits.
            raise EnrichmentError(
                f"properties cannot be serialised for the fingerprint: {exc}", "$.properties"
            ) from None
        hasher = self._hasher.copy()
        hasher.update(data)
        enrichment["fingerprint"] = hasher.hexdigest()

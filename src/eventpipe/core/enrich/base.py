"""The contract every enricher keeps, the fixed order they run in, and one shared input helper.

An enricher reads a validated event and writes what it derives into `enrichment` (the object
that becomes `event["enrichment"]`). It runs once per event on the hot path, so each one keeps
its per-event work to a few microseconds and does all set-up in its constructor.
"""

from __future__ import annotations

from typing import Any, Protocol

from eventpipe.core.errors import EnrichmentError

__all__ = ["ALL_ENRICHERS", "ENRICHER_ORDER", "Enricher", "context_str"]

# The order matters: `geo` reads the raw IP just before `ip` removes it, `ip` runs before
# `pseudonymise` and `fingerprint` so that nothing later sees the raw IP, and `fingerprint` runs last
# so that it hashes pseudonymised identifiers.
ENRICHER_ORDER: tuple[str, ...] = (
    "timestamps",
    "user_agent",
    "campaign",
    "referrer",
    "geo",
    "ip",
    "pseudonymise",
    "currency",
    "fingerprint",
)
ALL_ENRICHERS: frozenset[str] = frozenset(ENRICHER_ORDER)


class Enricher(Protocol):
    """One switchable enrichment step.

    `enrich` writes its results into `enrichment` and changes `event` only where its module says
    so. Missing optional input is not an error: the enricher then writes nothing. Input it cannot
    use raises `EnrichmentError(message, path)`, and the pipeline rejects that one event.
    """

    name: str

    def enrich(self, event: dict[str, Any], enrichment: dict[str, Any]) -> None: ...


def context_str(event: dict[str, Any], key: str) -> str | None:
    """Return `event["context"][key]` when it is a non-empty string, None when it is absent.

    Absent, null and empty values all mean "not sent" (browsers and SDKs send all three). A value
    of another type breaks the envelope contract, so it is an error rather than silently ignored.
    """
    context = event.get("context")
    if context is None:
        return None
    if not isinstance(context, dict):
        raise EnrichmentError("context must be an object", "$.context")
    value = context.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EnrichmentError(f"context.{key} must be a string", f"$.context.{key}")
    return value

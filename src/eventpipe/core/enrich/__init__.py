"""Event enrichment: switchable per-event steps that derive `event["enrichment"]`.

enrichers = build_enrichers(EnrichmentConfig(pseudonymise_fields=("user_id",), pseudonym_key=key))
enrichment: dict[str, Any] = {}
for enricher in enrichers:
    enricher.enrich(event, enrichment)   # EnrichmentError rejects this event
event["enrichment"] = enrichment
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventpipe.core.enrich.base import ALL_ENRICHERS, ENRICHER_ORDER, Enricher
from eventpipe.core.enrich.config import EnrichmentConfig
from eventpipe.core.enrich.rates import default_rates, load_rates

if TYPE_CHECKING:
    from eventpipe.core.enrich.chain import build_enrichers

__all__ = [
    "ALL_ENRICHERS",
    "ENRICHER_ORDER",
    "Enricher",
    "EnrichmentConfig",
    "build_enrichers",
    "default_rates",
    "load_rates",
]


def __getattr__(name: str) -> Any:
    # The chain imports every enricher (about 4 ms): the settings, and so every Lambda function's
    # cold start, need only the config; the chain is loaded by the first `build_enrichers`.
    if name == "build_enrichers":
        from eventpipe.core.enrich.chain import build_enrichers

        return build_enrichers
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Event enrichment: switchable per-event steps that derive `event["enrichment"]`.

enrichers = build_enrichers(EnrichmentConfig(pseudonymise_fields=("user_id",), pseudonym_key=key))
enrichment: dict[str, Any] = {}
for enricher in enrichers:
    enricher.enrich(event, enrichment)   # EnrichmentError rejects this event
event["enrichment"] = enrichment
"""

from __future__ import annotations

from eventpipe.core.enrich.base import ALL_ENRICHERS, ENRICHER_ORDER, Enricher
from eventpipe.core.enrich.chain import build_enrichers
from eventpipe.core.enrich.config import EnrichmentConfig
from eventpipe.core.enrich.rates import default_rates, load_rates

__all__ = [
    "ALL_ENRICHERS",
    "ENRICHER_ORDER",
    "Enricher",
    "EnrichmentConfig",
    "build_enrichers",
    "default_rates",
    "load_rates",
]

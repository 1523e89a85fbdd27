"""What the enrichment chain is told: which enrichers run and the few settings they need.

The settings layer fills this from the environment; this module only holds the values. They are
checked in `build_enrichers` (chain.py), once, so that a wrong setting fails at start-up with a
ConfigError instead of rejecting every event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eventpipe.core.enrich.base import ALL_ENRICHERS
from eventpipe.core.enrich.rates import default_rates, load_rates

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["ALL_ENRICHERS", "EnrichmentConfig", "load_rates"]


@dataclass(frozen=True)
class EnrichmentConfig:
    """Settings of the enrichment chain.

    - `enabled`: names of the enrichers to run (see `ALL_ENRICHERS`); they always run in the
      fixed order of `ENRICHER_ORDER`, whatever the order here.
    - `pseudonymise_fields`: dotted paths into the event (`"user_id"`, `"context.email"`) whose
      values are replaced by a keyed hash.
    - `pseudonym_key`: the HMAC key for those hashes; required when `pseudonymise_fields` is not
      empty. Use at least 32 random bytes and keep it stable: a new key gives new pseudonyms, so
      joins across the change break. When set, it also keys the fingerprint.
    - `base_currency`: the currency revenue is converted to; it must be in `rates`.
    - `rates`: units of each currency per 1 unit of the rates' own base (which has rate 1.0);
      defaults to the bundled file. When `base_currency` is another currency of the table, the
      rates are re-based on it, so the EUR-based default also serves a USD base.
    - `geoip_db`: a MaxMind-format database (GeoLite2, DB-IP Lite) for the `geo` enricher; without
      one that enricher is off.
    """

    enabled: frozenset[str] = ALL_ENRICHERS
    pseudonymise_fields: tuple[str, ...] = ()
    pseudonym_key: bytes | None = field(default=None, repr=False)  # a secret: kept out of logs
    base_currency: str = "EUR"
    rates: Mapping[str, float] = field(default_factory=default_rates, repr=False)
    geoip_db: Path | None = None

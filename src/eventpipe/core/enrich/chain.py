"""Turn an `EnrichmentConfig` into the list of enrichers the pipeline runs, checking it on the way.

All set-up happens here, once per process: names are checked, the pseudonym key demanded, the
rates re-based, the user-agent parser compiled. A bad setting therefore stops start-up with a
ConfigError that says what to fix, instead of rejecting every event one by one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from eventpipe.core.enrich.base import ALL_ENRICHERS, ENRICHER_ORDER, Enricher
from eventpipe.core.enrich.campaign import CampaignEnricher
from eventpipe.core.enrich.currency import CurrencyEnricher, rebase_rates
from eventpipe.core.enrich.fingerprint import FingerprintEnricher
from eventpipe.core.enrich.geo import GeoEnricher, open_geo_database
from eventpipe.core.enrich.ip import IpEnricher
from eventpipe.core.enrich.pseudonymise import PseudonymiseEnricher
from eventpipe.core.enrich.referrer import ReferrerEnricher
from eventpipe.core.enrich.timestamps import TimestampsEnricher
from eventpipe.core.enrich.user_agent import UserAgentEnricher
from eventpipe.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from eventpipe.core.enrich.config import EnrichmentConfig

__all__ = ["build_enrichers"]

log = logging.getLogger(__name__)

_FACTORIES: dict[str, Callable[[EnrichmentConfig], Enricher | None]] = {
    "timestamps": lambda config: TimestampsEnricher(),
    "user_agent": lambda config: UserAgentEnricher(),
    "campaign": lambda config: CampaignEnricher(),
    "referrer": lambda config: ReferrerEnricher(),
    "geo": lambda config: GeoEnricher(open_geo_database(config.geoip_db)) if config.geoip_db else None,
    "ip": lambda config: IpEnricher(),
    "pseudonymise": lambda config: PseudonymiseEnricher(config.pseudonymise_fields, config.pseudonym_key),
    "currency": lambda config: CurrencyEnricher(config.base_currency, config.rates),
    "fingerprint": lambda config: FingerprintEnricher(config.pseudonym_key),
}


def build_enrichers(config: EnrichmentConfig) -> list[Enricher]:
    """The enabled enrichers, in the fixed order of `ENRICHER_ORDER`.

    Raises ConfigError for an unknown enricher name, pseudonymise fields without a key (or with
    the `pseudonymise` enricher switched off, which would store them in clear), a malformed
    field path, a base currency that is malformed or missing from the rates, and a GeoIP database
    that cannot be read. `geo` without a database is left out (and logged once).
    """
    enabled = frozenset(config.enabled)
    unknown = enabled - ALL_ENRICHERS
    if unknown:
        raise ConfigError(f"unknown enricher(s): {', '.join(sorted(unknown))}; known: {', '.join(ENRICHER_ORDER)}")
    if config.pseudonymise_fields:
        if not config.pseudonym_key:
            raise ConfigError(
                "pseudonymise fields are configured but no pseudonym key is set; "
                "provide a secret key of at least 32 random bytes"
            )
        if "pseudonymise" not in enabled:
            raise ConfigError(
                "pseudonymise fields are configured but the pseudonymise enricher is disabled; "
                "enable it or clear the fields (they would otherwise be stored in clear)"
            )
    # Checked even with `currency` off: the base currency also labels the insights' revenue.
    rebase_rates(config.base_currency, config.rates)
    if "geo" in enabled and config.geoip_db is None:
        log.info("geo enricher off: no GeoIP database (set EVENTPIPE_GEOIP_DB to a GeoLite2 or DB-IP .mmdb file)")
    built = (_FACTORIES[name](config) for name in ENRICHER_ORDER if name in enabled)
    return [enricher for enricher in built if enricher is not None]
